# ssl for the virtual board: TLS is done by the host on the socket's real connection,
# with real certificate checks; failures raise OSError with mbedTLS-style codes.
import _hil

CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2
PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
MBEDTLS_VERSION = "Mbed TLS 3.6.0"


class SSLContext:
    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        self.protocol = protocol
        self.verify_mode = CERT_REQUIRED if protocol == PROTOCOL_TLS_CLIENT else CERT_NONE
        self._cadata = None
        self._chain = None

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile is not None:
            with open(cafile, "rb") as f:
                cadata = f.read()
        self._cadata = _hil.b64(bytes(cadata if not isinstance(cadata, str) else cadata.encode()))

    def load_cert_chain(self, certfile, keyfile):
        self._chain = (certfile, keyfile)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        _hil.call("ssl_wrap", sock._ch(), self.verify_mode, self._cadata, server_hostname, server_side)
        return sock


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE, cadata=None,
                server_hostname=None, do_handshake=True):
    ctx = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = cert_reqs
    if cadata is not None:
        ctx.load_verify_locations(cadata=cadata)
    return ctx.wrap_socket(sock, server_side=server_side, server_hostname=server_hostname)
