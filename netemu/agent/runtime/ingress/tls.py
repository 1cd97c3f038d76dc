"""TLS termination for the ingress controller: one server context per certificate, chosen by SNI.

Python's ssl loads certificates from files only: each Secret's PEM pair is written to a private
temporary file (0600), loaded, and the file removed at once. A name without a certificate (or a
client that sends no SNI) gets the controller's own self-signed "Kubernetes Ingress Controller
Fake Certificate", as ingress-nginx does.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"


class CertError(ValueError):
    """A Secret's pair that ssl refuses (bad PEM, key not matching the certificate)."""


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2           # ingress-nginx: ssl-protocols TLSv1.2 TLSv1.3
    fd, path = tempfile.mkstemp(prefix="netemu-ingress-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        ctx.load_cert_chain(path)
    except (ssl.SSLError, OSError) as exc:
        raise CertError(str(exc)) from None
    finally:
        os.unlink(path)
    return ctx


def fake_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate and key (ECDSA P-256, one year) named as ingress-nginx's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
                      x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CN)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class SNIContexts:
    """The listening socket's context, whose SNI callback switches to the host's context."""

    def __init__(self):
        cert, key = fake_certificate()
        self.default = server_context(cert, key)
        self.by_host: dict[str, ssl.SSLContext] = {}
        self.default.sni_callback = self._pick

    def _pick(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx) -> None:
        if not server_name:
            return None
        ctx = self.lookup(server_name)
        if ctx is not None:
            sslobj.context = ctx
        return None

    def lookup(self, host: str) -> ssl.SSLContext | None:
        host = host.lower().rstrip(".")
        if host in self.by_host:
            return self.by_host[host]
        _, _, rest = host.partition(".")
        return self.by_host.get(f"*.{rest}") if rest else None

    def replace(self, contexts: dict[str, ssl.SSLContext]) -> None:
        self.by_host = contexts
