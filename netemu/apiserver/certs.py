"""A cluster CA and a serving certificate, so kubectl sends its token.

kubectl (client-go's clientcmd) only attaches user credentials when the server URL is https,
so the API server serves TLS with a self-signed CA kept in the state dir (``ca.crt``, 0600
``ca.key``) and a serving certificate signed by it, renewed at every start for the current
listen address (IP SANs for it, 127.0.0.1 and the ``kubernetes`` Service IP 10.96.0.1; DNS SANs
for localhost and kubernetes.default.svc...). The kubeconfig embeds the CA, so it stays valid
across restarts. Uses the ``cryptography`` package when importable, else the ``openssl`` binary
(argv lists, never a shell).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import tempfile
from pathlib import Path

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVING_CERT, SERVING_KEY = "apiserver.crt", "apiserver.key"
DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local")
FIXED_IPS = ("127.0.0.1", "10.96.0.1")    # the kubernetes Service IP of another range comes as extra


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def san_ips(*hosts: str) -> list[str]:
    ips = list(FIXED_IPS)
    for host in hosts:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not ip.is_unspecified and str(ip) not in ips:
            ips.append(str(ip))
    return ips


def ensure(state_dir: str | os.PathLike, host: str, extra_ips: list[str] = ()) -> tuple[Path, Path, Path]:
    """(ca.crt, apiserver.crt, apiserver.key) in ``state_dir``: CA kept, serving cert renewed."""
    d = Path(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    try:
        import cryptography  # noqa: F401
        make = _with_cryptography
    except ImportError:
        make = _with_openssl
    make(d, san_ips(host, *extra_ips))
    return d / CA_CERT, d / SERVING_CERT, d / SERVING_KEY


def server_context(state_dir: str | os.PathLike, host: str,
                   extra_ips: list[str] = ()) -> tuple[ssl.SSLContext, bytes]:
    """The TLS context to serve with and the CA certificate (PEM) clients must trust. Client
    certificates are asked for, not required: one signed by the CA authenticates its CN."""
    ca, cert, key = ensure(state_dir, host, extra_ips)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=str(ca))
    return ctx, ca.read_bytes()


def issue_client(state_dir: str | os.PathLike, user: str, groups: tuple[str, ...] | list[str] = (),
                 days: int = 365) -> tuple[bytes, bytes]:
    """(certificate, key) PEM for a client: CN = user, one O per group, signed by the cluster
    CA (what kubeadm writes into admin.conf, kubelet.conf, controller-manager.conf)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(state_dir)
    ca_key = serialization.load_pem_private_key((d / CA_KEY).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((d / CA_CERT).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                        + [x509.NameAttribute(NameOID.COMMON_NAME, user)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _with_cryptography(d: Path, ips: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    pem = serialization.Encoding.PEM
    if not (d / CA_CERT).exists() or not (d / CA_KEY).exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netemu-ca")])
        ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        _write_private(d / CA_KEY, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        (d / CA_CERT).write_bytes(ca_cert.public_bytes(pem))
    ca_key = serialization.load_pem_private_key((d / CA_KEY).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((d / CA_CERT).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in DNS_NAMES] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(d / SERVING_KEY, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    (d / SERVING_CERT).write_bytes(cert.public_bytes(pem))


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _with_openssl(d: Path, ips: list[str]) -> None:
    if not (d / CA_CERT).exists() or not (d / CA_KEY).exists():
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", str(d / CA_KEY), "-out", str(d / CA_CERT), "-days", "3650",
              "-subj", "/CN=netemu-ca", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
        os.chmod(d / CA_KEY, 0o600)
    sans = ",".join([f"DNS:{n}" for n in DNS_NAMES] + [f"IP:{i}" for i in ips])
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        ext.write_text(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                       "extendedKeyUsage=serverAuth\n")
        _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", str(d / SERVING_KEY), "-out", str(csr), "-subj", "/CN=kube-apiserver"])
        _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(d / CA_CERT), "-CAkey", str(d / CA_KEY),
              "-CAcreateserial", "-out", str(d / SERVING_CERT), "-days", "365", "-extfile", str(ext)])
    os.chmod(d / SERVING_KEY, 0o600)
