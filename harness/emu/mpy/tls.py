# tls for the virtual board: TLS is done by the host on the socket's real connection, with
# real certificate checks. The ESP32 port has mbedTLS (a client context starts with
# CERT_REQUIRED; verify_mode can be changed; CA data is loaded with load_verify_locations),
# the ESP8266 port axtls (no certificate checks at all: verify_mode always reads CERT_NONE
# and setting it does nothing; no load_verify_locations). micropython-lib's frozen ssl
# module wraps this one as on the real firmware.
import _hil
import socket as _socket

_AXTLS = _hil.call("chip") == "esp8266"
CERT_NONE = 0
CERT_REQUIRED = 2
PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
MBEDTLS_VERSION = "Mbed TLS 3.6.2"


def _wrap(ctx, sock, server_side, server_hostname):
    if server_side:
        raise OSError(95)  # EOPNOTSUPP: no TLS server on the virtual board
    verify = CERT_NONE if _AXTLS else getattr(ctx, "verify_mode", CERT_REQUIRED)
    if verify == CERT_REQUIRED and server_hostname is None:
        raise ValueError("CERT_REQUIRED requires server_hostname")
    handle = _socket._h(sock)
    _hil.call("ssl_wrap", handle, verify, getattr(ctx, "_cadata", None), server_hostname, False)
    return sock


class SSLContext:
    def __init__(self, protocol):
        if not _AXTLS:
            self.verify_mode = CERT_REQUIRED if protocol == PROTOCOL_TLS_CLIENT else CERT_NONE
        object.__setattr__(self, "_protocol", protocol)

    if _AXTLS:
        # axtls: verify_mode reads CERT_NONE and a store is accepted and ignored; nothing else
        # can be set on the native object.
        def __getattr__(self, name):
            if name == "verify_mode":
                return CERT_NONE
            if name in ("_cadata", "_chain"):
                return None
            raise AttributeError(name)

        def __setattr__(self, name, value):
            if name != "verify_mode":
                raise AttributeError(name)

    def load_cert_chain(self, key, cert):
        object.__setattr__(self, "_chain", (key, cert))

    def wrap_socket(self, sock, *, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        return _wrap(self, sock, server_side, server_hostname)


if not _AXTLS:
    def _load_verify_locations(self, cadata):
        if isinstance(cadata, str):
            cadata = cadata.encode()
        object.__setattr__(self, "_cadata", _hil.b64(bytes(cadata)))

    SSLContext.load_verify_locations = _load_verify_locations
