"""A throw-away certificate authority per test run, for the HTTPS OTA scenarios.

A device doing HTTPS OTA must verify the server against a CA it was given (ESP-IDF's
``cert_pem``, MicroPython's ``ssl.SSLContext.load_verify_locations``). The harness
makes that CA itself, per run, so no private key is ever checked in and the TLS
failure scenarios can be produced on demand:

* ``server``: valid now, for ``localhost``, 127.0.0.1 and the host's own IP addresses
  (a bench board reaches the host by its LAN IP);
* ``expired``: same names, validity ended yesterday;
* ``wrong-host``: valid now, but only for a name the device never connects to.

All three are issued by the same CA and share one leaf key (generating keys is the
slow part; the scenarios are about the certificate, not the key). RSA-2048 is the
default because every ESP TLS stack (mbedTLS, and axTLS on old ESP8266 MicroPython)
handles it; ``key_type="ec"`` gives P-256 for speed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["rsa", "ec"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CertKind = Literal["server", "expired", "wrong-host"]

WRONG_HOST = "wrong-host.invalid"
"""The only name in the wrong-host certificate (``.invalid`` never resolves)."""


def kept_ca_dir() -> Path:
    """Where the harness keeps its CA: ``$HIL_CA_DIR``, else ``$XDG_DATA_HOME/esp-ota-hil/ca``
    (``~/.local/share/esp-ota-hil/ca``). Firmware built with its ``ca.pem`` trusts every later run."""
    if os.environ.get("HIL_CA_DIR"):
        return Path(os.environ["HIL_CA_DIR"])
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "esp-ota-hil" / "ca"


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key_type must be 'rsa' or 'ec', not {key_type!r}")


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def local_addresses() -> list[str]:
    """127.0.0.1 plus the addresses this host's name resolves to (no traffic is sent)."""
    found = ["127.0.0.1"]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM):
            addr = str(info[4][0])
            if addr not in found:
                found.append(addr)
    except OSError:
        pass
    return found


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class IssuedCert:
    """A leaf certificate and its key, as PEM, plus where they were written (if they were)."""

    kind: str
    hosts: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    cert_file: Path | None = None
    key_file: Path | None = None

    def server_context(self) -> ssl.SSLContext:
        """An ``ssl`` server context presenting this certificate (files must have been written)."""
        if self.cert_file is None or self.key_file is None:
            raise RuntimeError(f"{self.kind} certificate has not been written to disk; use TlsMaterial.create(dir)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


@dataclass
class CertificateAuthority:
    """A self-signed CA that issues leaf certificates for the OTA servers."""

    key: PrivateKey
    cert: x509.Certificate
    name: str = "esp-ota-hil test CA"

    @classmethod
    def create(cls, name: str = "esp-ota-hil test CA", key_type: KeyType = "rsa",
               valid_days: int = 30) -> CertificateAuthority:
        """A new CA, valid from well before the expired leaf's start so that expiry is its only defect."""
        key = _new_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "esp-ota-hil")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=60)).not_valid_after(now + dt.timedelta(days=valid_days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key=key, cert=cert, name=name)

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str], key_type: KeyType = "rsa",
                       valid_days: int = 3650) -> CertificateAuthority:
        """The CA kept in ``directory`` (``ca.pem``, ``ca.key``), made there on first use.

        A device whose firmware embeds its CA at build time (ESP-IDF's ``cert_pem``) can only
        trust a CA that outlives one run. Processes that start at once get the same CA (a lock
        file); a CA that expires within 30 days is replaced.
        """
        import fcntl

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = directory / "ca.pem", directory / "ca.key"
        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cert_file.exists() and key_file.exists():
                try:
                    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
                    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
                except ValueError as e:
                    raise ValueError(f"{directory}: the CA there does not load ({e}); remove ca.pem and ca.key "
                                     "to make a new one (firmware that embeds the old one must then be "
                                     "rebuilt)") from None
                left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
                if left > dt.timedelta(days=30):
                    return cls(key=key, cert=cert)  # type: ignore[arg-type]
            ca = cls.create(key_type=key_type, valid_days=valid_days)
            tmp = key_file.with_suffix(".tmp")
            tmp.write_bytes(_key_pem(ca.key))
            tmp.chmod(0o600)
            tmp.replace(key_file)
            tmp = cert_file.with_suffix(".tmp")
            tmp.write_bytes(ca.cert_pem)
            tmp.replace(cert_file)
            return ca

    @property
    def cert_pem(self) -> bytes:
        """What the device is given to trust."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, hosts: list[str], *, key: PrivateKey, kind: str = "server",
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> IssuedCert:
        """A TLS server certificate for ``hosts`` (names and/or IP addresses) signed by this CA."""
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or address")
        now = dt.datetime.now(dt.timezone.utc)
        not_before = not_before or now - dt.timedelta(hours=1)
        not_after = not_after or now + dt.timedelta(days=30)
        if not_after <= not_before:
            raise ValueError("not_after must be later than not_before")
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(_san(hosts), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return IssuedCert(kind=kind, hosts=tuple(hosts), cert_pem=cert.public_bytes(serialization.Encoding.PEM),
                          key_pem=_key_pem(key), not_before=not_before, not_after=not_after)


@dataclass
class TlsMaterial:
    """The CA and the three server certificates of a run, written as PEM files into ``directory``.

    Files: ``ca.pem``, ``server.pem``/``server.key``, ``expired.pem``/``expired.key``,
    ``wrong-host.pem``/``wrong-host.key``.
    """

    directory: Path
    ca: CertificateAuthority
    certs: dict[str, IssuedCert] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: str | os.PathLike[str], hosts: list[str] | None = None, *,
               key_type: KeyType = "rsa", ca_dir: str | os.PathLike[str] | None = None) -> TlsMaterial:
        """Make a CA and the server/expired/wrong-host certificates for ``hosts``.

        ``hosts`` defaults to ``localhost`` plus :func:`local_addresses`. With ``ca_dir`` the CA is
        the one kept there (:meth:`CertificateAuthority.load_or_create`), not a new one.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        hosts = list(hosts) if hosts else ["localhost", *local_addresses()]
        ca = (CertificateAuthority.create(key_type=key_type) if ca_dir is None
              else CertificateAuthority.load_or_create(ca_dir, key_type=key_type))
        leaf_key = _new_key(key_type)
        now = dt.datetime.now(dt.timezone.utc)
        issued = [
            ca.issue(hosts, key=leaf_key, kind="server"),
            ca.issue(hosts, key=leaf_key, kind="expired", not_before=now - dt.timedelta(days=30),
                     not_after=now - dt.timedelta(days=1)),
            ca.issue([WRONG_HOST], key=leaf_key, kind="wrong-host"),
        ]
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        material = cls(directory=directory, ca=ca)
        for cert in issued:
            cert_file = directory / f"{cert.kind}.pem"
            key_file = directory / f"{cert.kind}.key"
            cert_file.write_bytes(cert.cert_pem)
            key_file.write_bytes(cert.key_pem)
            key_file.chmod(0o600)
            material.certs[cert.kind] = dataclasses.replace(cert, cert_file=cert_file, key_file=key_file)
        return material

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, kind: CertKind = "server") -> IssuedCert:
        try:
            return self.certs[kind]
        except KeyError:
            raise KeyError(f"no {kind!r} certificate; have {sorted(self.certs)}") from None

    def server_context(self, kind: CertKind = "server") -> ssl.SSLContext:
        return self.cert(kind).server_context()

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this run's CA (what a correctly set-up device does)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


__all__ = ["CertKind", "CertificateAuthority", "IssuedCert", "KeyType", "TlsMaterial", "WRONG_HOST", "kept_ca_dir",
           "local_addresses"]
