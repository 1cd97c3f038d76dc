"""The kernel self-check's scenario (pure part): it must really exercise every rule shape."""

from __future__ import annotations

import pytest

from netemu.agent.proxy.iptables import render
from netemu.testing.iptables_verify import _V4, _V6, main, scenario
from netemu.agent.proxy.model import ProxyConfig

from .test_iptables_builder import check_jumps


@pytest.mark.parametrize("family", [_V4, _V6], ids=["ipv4", "ipv6"])
def test_scenario_covers_every_rule_shape(family):
    problems: list[str] = []
    rs = render(*scenario(family), family["node"], ProxyConfig(), problems=problems)
    assert problems == []
    check_jumps(rs.text)
    for shape in ("--rcheck --seconds 60 --reap", "--set", "KUBE-SVL-", "KUBE-FW-", "KUBE-EXT-", "-j REJECT",
                  "has no local endpoints", "-m udp -p udp", "-m sctp -p sctp", "external IP",
                  "loadbalancer IP", "--probability 0.3333333333", "health check node port",
                  "-m addrtype --src-type LOCAL", "--to-destination"):
        assert shape in rs.text, shape


def test_verify_refuses_without_root(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main([]) == 2 and "needs root" in capsys.readouterr().err
