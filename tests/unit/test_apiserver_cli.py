"""``netemu apiserver`` argument checking: bad input is one clear line and exit code 2."""

from __future__ import annotations

import pytest

from netemu.cli import apiserver_cmd
from netemu.cli.main import UsageError, main


@pytest.mark.parametrize("text, expected", [("127.0.0.1:6443", ("127.0.0.1", 6443)),
                                            (":0", ("0.0.0.0", 0)), ("[::1]:8443", ("::1", 8443))])
def test_parse_listen(text, expected):
    assert apiserver_cmd.parse_listen(text) == expected


@pytest.mark.parametrize("text", ["6443", "host:", "host:port", "1.2.3.4:70000"])
def test_bad_listen(text):
    with pytest.raises(UsageError):
        apiserver_cmd.parse_listen(text)


def test_bad_flags_exit_2_before_starting(tmp_path, capsys):
    assert main(["apiserver", "--listen", "nope", "--state-dir", str(tmp_path)]) == 2
    assert "--listen 'nope'" in capsys.readouterr().err
    assert main(["apiserver", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path),
                 "--store", "mysql:x"]) == 2
    assert "unknown store" in capsys.readouterr().err
    assert not (tmp_path / "kubeconfig").exists()


def test_port_in_use_is_a_clear_error(tmp_path, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["apiserver", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path),
                     "--no-controllers"])
    assert code == 1
    assert "error" in capsys.readouterr().err


def test_bad_advertise_address(tmp_path, capsys):
    assert main(["apiserver", "--listen", "0.0.0.0:0", "--state-dir", str(tmp_path),
                 "--advertise-address", "node-1"]) == 2
    assert "--advertise-address 'node-1'" in capsys.readouterr().err


def test_certificate_names_cover_listen_and_advertised_addresses(tmp_path):
    pytest.importorskip("cryptography")
    from cryptography import x509
    from netemu.apiserver import certs
    ca, cert, _ = certs.ensure(tmp_path, "127.0.0.1", ["172.18.0.1"])
    sans = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "10.96.0.1", "172.18.0.1"}
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    first_ca = ca.read_bytes()
    certs.ensure(tmp_path, "127.0.0.1")
    assert ca.read_bytes() == first_ca                           # the CA is kept, kubeconfigs stay valid


def test_openssl_fallback_makes_a_verifiable_serving_certificate(tmp_path):
    import shutil
    import subprocess
    from netemu.apiserver import certs
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl binary")
    certs._with_openssl(tmp_path, certs.san_ips("127.0.0.1"))
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / certs.CA_CERT),
                             str(tmp_path / certs.SERVING_CERT)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / certs.SERVING_CERT), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:kubernetes.default.svc" in text
    assert oct((tmp_path / certs.SERVING_KEY).stat().st_mode & 0o777) == "0o600"


def test_service_cidr_drives_allocation_and_the_kubernetes_service(tmp_path):
    import asyncio
    import ipaddress

    from netemu.api import kinds
    from netemu.controlplane.server import ServerConfig, serve
    from netemu.client import ApiClient
    svc = kinds.by_resource("", "v1", "services")

    async def scenario():
        stop = asyncio.Event()
        ready = asyncio.get_running_loop().create_future()
        config = ServerConfig("127.0.0.1", 0, f"sqlite:{tmp_path / 'db'}", tmp_path, controllers=False,
                              service_cidr="10.100.0.0/16")
        task = asyncio.ensure_future(serve(config, stop, ready.set_result))
        running = await asyncio.wait_for(ready, 20)
        try:
            async with ApiClient.from_kubeconfig(str(running.kubeconfig)) as api:
                assert (await api.get(svc, "kubernetes", "default"))["spec"]["clusterIP"] == "10.100.0.1"
                made = await api.create(svc, {"metadata": {"name": "a", "namespace": "default"},
                                              "spec": {"ports": [{"port": 80}]}})
                ip = ipaddress.ip_address(made["spec"]["clusterIP"])
                assert ip in ipaddress.ip_network("10.100.0.0/16") and str(ip) not in ("10.100.0.1", "10.100.0.10")
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    asyncio.run(scenario())


@pytest.mark.parametrize("text", ["30000", "a-b", "40000-30000", "0-10", "30000-70000"])
def test_bad_node_port_range(text):
    with pytest.raises(UsageError):
        apiserver_cmd.parse_port_range(text)


def test_node_port_range_is_used():
    from netemu.apiserver.services import allocations_for
    alloc = allocations_for("10.96.0.0/12", (31000, 31001))
    svc = {"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    alloc.allocate(svc)
    assert sorted(p["nodePort"] for p in svc["spec"]["ports"]) == [31000, 31001]


def test_bad_flags_leave_no_state_dir(tmp_path):
    target = tmp_path / "never"
    assert main(["apiserver", "--state-dir", str(target), "--service-node-port-range", "x"]) == 2
    assert main(["apiserver", "--state-dir", str(target), "--store", "mysql:x"]) == 2
    assert not target.exists()
