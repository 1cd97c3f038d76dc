"""The tracer's kernel semantics on small hand-made dumps: jumps, gotos, marks, unknowns, limits."""

from __future__ import annotations

import json

import pytest

from netemu.agent.proxy.xtables.dump import parse
from netemu.agent.proxy.iptables.trace import Tracer
from netemu.agent.proxy.xtables.trace import MAX_BRANCHES
from netemu.agent.proxy.tracing import Packet, TraceError


def nat(*rules: str, chains: tuple[str, ...] = ("A", "B")) -> Tracer:
    decl = "".join(f":{c} - [0:0]\n" for c in chains)
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" + decl
            + "\n".join(rules) + "\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
            ":OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    dump = parse(text)
    assert dump.problems == []
    return Tracer(dump)


def dests(result):
    return [(o.destination, round(o.probability, 6)) for o in result.outcomes]


PKT = Packet("10.0.0.2", "10.96.0.10", 53, "udp")


def test_goto_returns_to_the_callers_caller_and_return_resumes():
    t = nat("-A PREROUTING -j A",
            "-A PREROUTING -j DNAT --to-destination 10.1.0.1:53",
            "-A A -g B",
            "-A A -j DNAT --to-destination 10.9.9.9:53",   # never: B was a goto
            "-A B -j RETURN",
            "-A B -j DNAT --to-destination 10.8.8.8:53")
    r = t.trace(PKT)
    assert dests(r) == [("10.1.0.1:53", 1.0)]
    assert r.outcomes[0].chains[:3] == ["nat:PREROUTING", "nat:A", "nat:B"]


def test_statistic_branches_multiply_and_continue_after_returns():
    t = nat("-A PREROUTING -m statistic --mode random --probability 0.25 -j A",
            "-A PREROUTING -j DNAT --to-destination 10.1.0.2",
            "-A A -j RETURN")
    r = t.trace(PKT)
    # both branches end at the same DNAT by different chain paths: kept apart, summed per endpoint
    assert sorted(dests(r)) == [("10.1.0.2:53", 0.25), ("10.1.0.2:53", 0.75)]
    assert r.endpoints() == {"10.1.0.2:53": pytest.approx(1.0)}


def test_nth_mode_is_treated_as_one_in_n_and_said():
    t = nat("-A PREROUTING -m statistic --mode nth --every 4 --packet 0 -j DNAT --to-destination 10.1.0.3:53")
    r = t.trace(PKT)
    assert r.endpoints() == {"10.1.0.3:53": pytest.approx(0.25)}
    assert any("--mode nth" in n for n in r.notes)


def test_marks_in_every_spelling():
    t = nat("-A PREROUTING -j MARK --set-xmark 0x4000/0x4000",
            "-A PREROUTING -j MARK --or-mark 0x1",
            "-A PREROUTING -j MARK --xor-mark 0x1",
            "-A PREROUTING -j MARK --set-mark 0x20/0xf0",
            "-A PREROUTING -m mark --mark 0x4020/0xffff -j DNAT --to-destination 10.1.0.4:53",
            "-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A POSTROUTING -j MASQUERADE")
    (o,) = t.trace(PKT).outcomes
    assert o.destination == "10.1.0.4:53" and o.masquerade and o.masquerade_mark


def test_unknown_ipset_and_interface_are_reported_and_assumed_not_to_match():
    t = nat("-A PREROUTING -m set --match-set KUBE-LB dst -j DNAT --to-destination 10.1.0.5:53",
            "-A PREROUTING -i cni+ -j DNAT --to-destination 10.1.0.6:53",
            "-A PREROUTING -m frob --zap 1 -j DNAT --to-destination 10.1.0.7:53")
    r = t.trace(PKT)
    assert r.outcomes[0].destination is None
    text = "\n".join(r.unevaluated)
    assert "cannot evaluate --match-set KUBE-LB dst (-m set)" in text
    assert "cannot evaluate -i cni+ (give the input interface)" in text
    assert "--zap" in text
    known = t.trace(PKT, ipsets={"KUBE-LB": ["10.96.0.0/12"]})
    assert known.outcomes[0].destination == "10.1.0.5:53"
    on_iface = t.trace(Packet("10.0.0.2", "10.96.0.10", 53, "udp", iif="cni0"))
    assert on_iface.outcomes[0].destination == "10.1.0.6:53"


def test_protocols_ports_and_multiport():
    t = nat("-A PREROUTING -p tcp -m tcp --dport 53 -j DNAT --to-destination 10.1.0.8",
            "-A PREROUTING -p udp -m multiport --dports 1000:2000,53 -j DNAT --to-destination 10.1.0.9",
            "-A PREROUTING -p sctp -j DNAT --to-destination 10.1.0.10")
    assert t.trace(PKT).outcomes[0].destination == "10.1.0.9:53"
    assert t.trace(Packet("10.0.0.2", "10.96.0.10", 53, "tcp")).outcomes[0].destination == "10.1.0.8:53"
    assert t.trace(Packet("10.0.0.2", "10.96.0.10", 53, "SCTP")).outcomes[0].destination == "10.1.0.10:53"


def test_ctstate_dnat_and_the_kubelet_firewall():
    text = """*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -d 127.0.0.1/32 -p tcp -j DNAT --to-destination 127.0.0.1:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
"""
    t = Tracer(parse(text))
    ok = t.trace(Packet("192.168.0.2", "127.0.0.1", 80), ["192.168.0.2"])
    assert [o.verdict for o in ok.outcomes] == ["ACCEPT"] and ok.origin == "node"
    bad = t.trace(Packet("192.168.0.9", "127.0.0.5", 80), ["192.168.0.2"], origin="external")
    assert [o.verdict for o in bad.outcomes] == ["DROP"] and bad.hook == "PREROUTING"


def test_a_loop_is_cut_not_fatal():
    t = nat("-A PREROUTING -j A", "-A A -j B", "-A B -j A")
    r = t.trace(PKT)
    assert any("depth" in n for n in r.notes)


def test_branch_explosion_is_cut_short_and_said():
    rules = ["-A PREROUTING -j A"] + ["-A A -m statistic --mode random --probability 0.5 -j B"] * 16
    t = nat(*rules, "-A B -j RETURN")
    r = t.trace(PKT)
    assert any(f"more than {MAX_BRANCHES} branches" in n for n in r.notes)


@pytest.mark.parametrize("packet,origin,msg", [
    (Packet("10.0.0.x", "10.96.0.1", 80), None, "source '10.0.0.x' is not an IP address"),
    (Packet("10.0.0.1", "10.96.0.1", 80, "icmpv6"), None, "protocol 'icmpv6'"),
    (Packet("10.0.0.1", "10.96.0.1", 70000), None, "out of range"),
    (Packet("10.0.0.1", "10.96.0.1", 80), "moon", "origin must be"),
])
def test_bad_input_is_a_clear_error(packet, origin, msg):
    with pytest.raises(TraceError, match=msg):
        nat().trace(packet, origin=origin)


def test_json_and_human_renderings():
    t = nat("-A PREROUTING -m statistic --mode random --probability 0.5 -j DNAT --to-destination 10.1.0.1:53",
            "-A PREROUTING -j DNAT --to-destination [fd00::1]:53")
    r = t.trace(PKT)
    data = json.loads(r.to_json())
    assert [o["destination"] for o in data["outcomes"]] == ["10.1.0.1:53", "[fd00::1]:53"]
    assert data["packet"]["proto"] == "udp" and data["hook"] == "PREROUTING"
    text = r.render()
    assert " 50.00%  DNAT -> 10.1.0.1:53" in text and "nat:PREROUTING" in text


def test_malformed_values_are_reported_never_a_crash():
    t = nat("-A PREROUTING -m statistic --mode random --probability abc -j DNAT --to-destination 10.1.0.1",
            "-A PREROUTING -p udp -m udp --dport 5x -j DNAT --to-destination 10.1.0.2",
            "-A PREROUTING -m mark --mark zz -j DNAT --to-destination 10.1.0.3",
            "-A PREROUTING -j MARK --set-xmark qq",
            "-A PREROUTING -j DNAT --to-destination 10.1.0.4:http",
            "-A PREROUTING -m statistic --mode nth --every 0 -j DNAT --to-destination 10.1.0.5",
            "-A PREROUTING -j DNAT --to-destination 10.1.0.6:53")
    r = t.trace(PKT)
    assert [o.destination for o in r.outcomes] == ["10.1.0.6:53"]
    text = "\n".join(r.unevaluated)
    for bad in ("--probability abc", "--dport 5x", "--mark zz", "--set-xmark qq", "10.1.0.4:http", "--every 0"):
        assert bad in text, bad


def test_fuzzed_rules_never_crash_parse_trace_or_plan():
    import random

    from netemu.agent.proxy.iptables.cleanup import plan_iptables

    vocab = ["-s", "-d", "!", "-p", "tcp", "udp", "-m", "mark", "--mark", "0x4000/0x4000", "statistic",
             "--mode", "random", "--probability", "0.5", "2", "-j", "-g", "A", "B", "KUBE-X", "DNAT",
             "--to-destination", "10.0.0.1:80", "[::1]:x", "MARK", "--set-xmark", "recent", "--rcheck",
             "--name", "--set", "addrtype", "--dst-type", "LOCAL", "UNICAST", "conntrack", "--ctstate",
             "NEW,DNAT", "set", "--match-set", "S", "src", "multiport", "--dports", "1:2,x", "10.0.0.0/8",
             "300.1.1.1", '"quoted word"', '"', "'", "\\", "-i", "eth+", "--comment", "RETURN", "ACCEPT",
             "REJECT", "DROP", "MASQUERADE", "REDIRECT", "--to-ports", "8080-8090", "-c", "1", "-1"]
    rng = random.Random(20261127)
    for round_ in range(40):
        lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":A - [0:0]",
                 ":B - [0:0]", ":KUBE-X - [0:0]"]
        for _ in range(25):
            chain = rng.choice(["PREROUTING", "A", "B", "KUBE-X", "POSTROUTING", "NOPE"])
            lines.append(f"-A {chain} " + " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))))
        lines.append("COMMIT")
        text = "\n".join(lines) + "\n"
        dump = parse(text)
        result = Tracer(dump).trace(Packet("10.0.0.2", "10.96.0.1", 80), ["192.168.0.2"])
        assert abs(sum(o.probability for o in result.outcomes) - 1.0) < 1e-6 or any(
            "cut short" in n or "depth" in n for n in result.notes), round_
        plan_iptables(text)


def test_ipv6_dump():
    text = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-V6 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-V6
-A KUBE-SERVICES -d fd00:10:96::1/128 -p tcp -m tcp --dport 80 -j KUBE-SVC-V6
-A KUBE-SVC-V6 ! -s fd00:10::/64 -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SVC-V6 -p tcp -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination [fd00:10::2]:8080
-A KUBE-SVC-V6 -p tcp -j DNAT --to-destination [fd00:10::3]:8080
COMMIT
"""
    r = Tracer(parse(text)).trace(Packet("fd00:10::9", "fd00:10:96::1", 80), ["2001:db8::1"])
    assert r.endpoints() == {"[fd00:10::2]:8080": 0.5, "[fd00:10::3]:8080": 0.5}
    assert not any(o.masquerade_mark for o in r.outcomes)
    outside = Tracer(parse(text)).trace(Packet("2001:db8::7", "fd00:10:96::1", 80), ["2001:db8::1"])
    assert all(o.masquerade_mark for o in outside.outcomes) and outside.origin == "pod-or-external"
    assert Tracer(parse(text)).trace(Packet("::1", "fd00:10:96::1", 80)).origin == "node"


def test_rendering_of_drop_and_local_delivery():
    text = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A FORWARD -d 1.2.3.4/32 -j DROP
COMMIT
"""
    t = Tracer(parse(text))
    dropped = t.trace(Packet("203.0.113.9", "1.2.3.4", 80), ["192.168.0.2"]).render()
    assert "100.00%  no DNAT" in dropped and "DROP by filter FORWARD: -A FORWARD -d 1.2.3.4/32 -j DROP" in dropped
    local = t.trace(Packet("203.0.113.9", "192.168.0.2", 22), ["192.168.0.2"]).render()
    assert "delivered locally" in local and "filter:INPUT" in local


def test_standard_jumps_are_the_jump_rules_as_a_node_saves_them():
    """The tracer's assumed jumps come from chains.jump_rules() (one copy of them), in the order
    iptables-save shows them on a real node."""
    from netemu.agent.proxy.iptables.trace import STANDARD_JUMPS

    new = '-m conntrack --ctstate NEW -m comment --comment '
    assert STANDARD_JUMPS == {
        ("filter", "INPUT"): (
            new + '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
            new + '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
            "-j KUBE-FIREWALL"),
        ("filter", "FORWARD"): (
            new + '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
            new + '"kubernetes service portals" -j KUBE-SERVICES',
            new + '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
        ("filter", "OUTPUT"): (
            new + '"kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
            new + '"kubernetes service portals" -j KUBE-SERVICES',
            "-j KUBE-FIREWALL"),
        ("nat", "PREROUTING"): ('-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',),
        ("nat", "OUTPUT"): ('-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',),
        ("nat", "POSTROUTING"): ('-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',),
    }
    assert list(STANDARD_JUMPS) == [("filter", "INPUT"), ("filter", "FORWARD"), ("filter", "OUTPUT"),
                                    ("nat", "PREROUTING"), ("nat", "OUTPUT"), ("nat", "POSTROUTING")]


def test_a_malformed_target_is_reported_and_the_walk_goes_on():
    t = nat("-A PREROUTING -j MARK --set-xmark nonsense",          # non-terminal, malformed
            "-A PREROUTING -j DNAT --to-destination 10.1.0.1:port",  # terminal, malformed
            "-A PREROUTING -j DNAT --to-destination 10.1.0.2:53")
    r = t.trace(PKT)
    assert dests(r) == [("10.1.0.2:53", 1.0)]
    assert r.unevaluated == [
        "nat PREROUTING: malformed target options, rule ignored: -A PREROUTING -j DNAT --to-destination 10.1.0.1:port",
        "nat PREROUTING: malformed target options, rule ignored: -A PREROUTING -j MARK --set-xmark nonsense"]
