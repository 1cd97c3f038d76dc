"""`netemu proxy cleanup` against a real kernel: rules loaded into a namespace this test makes.

Both iptables backends (iptables-nft and iptables-legacy argv), both families, plus an nftables
`kube-proxy` table; after cleanup iptables-save shows no KUBE- anywhere, unrelated rules survive,
and a second run has nothing to do. Nothing here touches the root namespace's rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from netemu.agent.proxy.leftovers import Cleaner
from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.iptables.trace import Tracer
from netemu.agent.proxy.tracing import Packet
from netemu.cli.main import main
from tests.unit.test_trace_fixtures import REAL_SOURCE

pytestmark = pytest.mark.root

EXTRA_V4 = """*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:NTP-USER - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "not ours: must survive" -j ACCEPT
-A FORWARD -j NTP-USER
-A NTP-USER -s 10.0.0.0/8 -g KUBE-SERVICES
-A NTP-USER -d 192.0.2.1/32 -j DROP
COMMIT
"""

V6 = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-V6 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d fd00::1/128 -p tcp -m tcp --dport 80 -j KUBE-SVC-V6
-A KUBE-SVC-V6 -p tcp -j DNAT --to-destination [fd00::2]:80
COMMIT
"""


def sh(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


@pytest.fixture
def netns():
    name = f"ntp{os.getpid() % 10**7}c"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def load(ns: str, backend: str) -> None:
    sh("ip", "netns", "exec", ns, f"iptables-{backend}-restore", "--noflush", stdin=REAL_SOURCE)
    sh("ip", "netns", "exec", ns, f"iptables-{backend}-restore", "--noflush", stdin=EXTRA_V4)
    if shutil.which(f"ip6tables-{backend}-restore"):
        sh("ip", "netns", "exec", ns, f"ip6tables-{backend}-restore", "--noflush", stdin=V6)


def saved(ns: str, backend: str, family: str = "iptables") -> str:
    return sh("ip", "netns", "exec", ns, f"{family}-{backend}-save")


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_cleanup_removes_every_kube_chain_and_jump(netns, backend):
    load(netns, backend)
    before = saved(netns, backend)
    assert before.count("KUBE-") > 20
    # the live dump traces like the one we loaded: the parser reads what the kernel prints
    result = Tracer(parse(before)).trace(Packet("10.0.0.2", "172.30.0.45", 80), ["192.168.0.2"])
    assert result.affinity and set(result.endpoints()) == {"10.180.0.3:80", "10.180.0.4:80"}
    sh("ip", "netns", "exec", netns, "nft", "add", "table", "ip", "kube-proxy")

    report = Cleaner(netns=netns, backend=backend).cleanup()
    assert report.errors == []
    assert f"{backend} ipv4 nat KUBE-SVC-NUKIZ6OKUXPJNT4C" in report.removed_chains
    assert f"{backend} ipv4 mangle KUBE-PROXY-CANARY" in report.removed_chains

    after = saved(netns, backend)
    assert "KUBE-" not in after
    assert "not ours: must survive" in after and "-A NTP-USER -d 192.0.2.1/32 -j DROP" in after
    assert "-A FORWARD -j NTP-USER" in after
    if shutil.which(f"ip6tables-{backend}-save"):
        assert "KUBE-" not in saved(netns, backend, "ip6tables")
    assert "kube-proxy" not in sh("ip", "netns", "exec", netns, "nft", "list", "tables")

    again = Cleaner(netns=netns, backend=backend).cleanup()
    assert again.nothing_to_do, again
    assert parse(saved(netns, backend)).render() == parse(after).render()


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_cli_cleanup_twice(netns, backend, capsys):
    load(netns, backend)
    assert main(["proxy", "cleanup", "--netns", netns, "--backend", backend]) == 0
    assert "KUBE-" not in saved(netns, backend)
    assert main(["proxy", "cleanup", "--netns", netns, "--backend", backend]) == 0
    assert "nothing to clean" in capsys.readouterr().out


def test_cli_trace_live(netns, capsys):
    sh("ip", "netns", "exec", netns, "iptables-nft-restore", "--noflush", stdin=REAL_SOURCE)
    sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
    assert main(["trace", "--live", "--netns", netns, "--backend", "nft", "--src", "10.0.0.2",
                 "--dst", "172.30.0.46", "--dport", "80", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"verdict": "REJECT"' in out


def test_cli_trace_live_finds_the_backend_holding_the_rules(netns, capsys):
    sh("ip", "netns", "exec", netns, "iptables-legacy-restore", "--noflush", stdin=REAL_SOURCE)
    assert main(["trace", "--live", "--netns", netns, "--src", "10.0.0.2", "--dst", "172.30.0.45",
                 "--dport", "80", "--node-ip", "192.168.0.2"]) == 0
    out = capsys.readouterr().out
    assert "read iptables-legacy-save" in out and "affinity: first connection" in out
    assert "DNAT -> 10.180.0.3:80" in out and "DNAT -> 10.180.0.4:80" in out
