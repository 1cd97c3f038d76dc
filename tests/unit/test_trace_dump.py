"""The iptables-save / iptables-restore parser: real dumps of both backends, round trips, odd input."""

from __future__ import annotations

import pytest

from netemu.agent.proxy.xtables.dump import DumpError, chain_names, parse, table_spans
from netemu.agent.proxy.xtables.rule import parse_rule
from tests.unit.test_trace_fixtures import (REAL_LEGACY_SAVE, REAL_NFT_SAVE_COUNTERS, REAL_SOURCE,
                                            UPSTREAM_OVERALL)


def _rules(dump, table):
    return {c.name: [r.spec for r in c.rules] for c in dump.tables[table].chains.values()}


def _semantics(dump):
    """What a rule means, independent of the order iptables-save prints its options in."""
    out = {}
    for t in dump.tables.values():
        for c in t.chains.values():
            out[(t.name, c.name)] = (c.policy, [
                (r.target, r.goto, tuple(sorted((m.module, tuple(sorted(
                    (o.name, o.values, o.negated) for o in m.options))) for m in r.matches
                    if m.module != "tcp" or m.options)), r.target_options) for r in c.rules])
    return out


def test_nft_and_legacy_saves_parse_to_the_same_tables():
    nft, legacy = parse(REAL_NFT_SAVE_COUNTERS), parse(REAL_LEGACY_SAVE)
    assert nft.problems == [] and legacy.problems == []
    assert list(nft.tables) == ["filter", "nat"] and list(legacy.tables) == ["nat", "filter"]
    for table in ("filter", "nat"):
        assert _rules(nft, table) == _rules(legacy, table)
    assert nft.chain("nat", "PREROUTING").policy == "ACCEPT"
    assert nft.chain("nat", "KUBE-SERVICES").policy is None
    assert nft.chain("nat", "KUBE-SERVICES").rules[0].counters == (0, 0)


def test_save_means_what_the_restored_source_meant():
    """iptables-save reorders options (-d before -m comment, adds /32): same matches either way."""
    src, saved = parse(REAL_SOURCE), parse(REAL_LEGACY_SAVE)
    saved_sem = _semantics(saved)
    for key, (policy, rules) in _semantics(src).items():
        assert len(saved_sem[key][1]) == len(rules), key
    svc = saved.chain("nat", "KUBE-SVC-NUKIZ6OKUXPJNT4C").rules
    assert [r.target for r in svc] == ["KUBE-MARK-MASQ", "KUBE-SEP-I77PXRDZVX7PMWMN",
                                       "KUBE-SEP-UKSFD7AGPMPPLUHC", "KUBE-SEP-I77PXRDZVX7PMWMN",
                                       "KUBE-SEP-UKSFD7AGPMPPLUHC"]


def test_rule_parts_of_a_real_dump():
    nat = parse(REAL_NFT_SAVE_COUNTERS).tables["nat"]
    masq, affinity, _, stat, _ = nat.chains["KUBE-SVC-NUKIZ6OKUXPJNT4C"].rules
    assert masq.option("s").values == ("10.0.0.0/8",) and masq.option("s").negated
    assert masq.option("d").value == "172.30.0.45/32" and masq.option("dport", "tcp").value == "80"
    assert masq.comment == "ns5/svc5:p80 cluster IP"
    recent = affinity.option("rcheck", "recent")
    assert recent is not None and affinity.option("seconds").value == "10800"
    assert affinity.option("reap") is not None and affinity.option("name").value == "KUBE-SEP-I77PXRDZVX7PMWMN"
    assert stat.option("probability", "statistic").value == "0.33333333349"
    sep = nat.chains["KUBE-SEP-I77PXRDZVX7PMWMN"].rules[1]
    assert sep.option("set", "recent") is not None and sep.option("mask").value == "255.255.255.255"
    assert sep.target == "DNAT" and sep.target_option("to-destination").value == "10.180.0.3:80"
    post = nat.chains["KUBE-POSTROUTING"].rules
    assert post[0].option("mark", "mark").negated and post[0].option("mark").value == "0x4000/0x4000"
    assert post[1].target_option("set-xmark").value == "0x4000/0x0"
    assert post[2].target == "MASQUERADE" and post[2].target_option("random-fully") is not None
    ext = nat.chains["KUBE-EXT-GNZBNJ2PO5MGZ6GT"].rules[0]
    assert ext.goto and ext.target == "KUBE-SVC-NUKIZ6OKUXPJNT4C"
    filt = parse(REAL_NFT_SAVE_COUNTERS).tables["filter"]
    quoted = filt.chains["INPUT"].rules[0]
    assert quoted.comment == 'a "quoted" word'
    assert quoted.option("dports", "multiport").value == "53,5353:5360"
    reject = filt.chains["KUBE-SERVICES"].rules[0]
    assert reject.target == "REJECT" and reject.target_option("reject-with").value == "icmp-port-unreachable"
    assert filt.chains["KUBE-FORWARD"].rules[0].option("ctstate", "conntrack").value == "INVALID"


@pytest.mark.parametrize("text", [REAL_NFT_SAVE_COUNTERS, REAL_LEGACY_SAVE, UPSTREAM_OVERALL])
def test_render_round_trips(text):
    once = parse(text)
    again = parse(once.render(counters=True))
    assert once.render(counters=True) == again.render(counters=True)
    assert _semantics(once) == _semantics(again)


def test_render_of_a_save_is_the_save_without_comment_lines():
    kept = [line for line in REAL_NFT_SAVE_COUNTERS.splitlines() if line and not line.startswith("#")]
    assert parse(REAL_NFT_SAVE_COUNTERS).render(counters=True).splitlines() == kept


def test_odd_matches_are_parsed_or_kept_as_unknown():
    r = parse_rule("X", '-i cni0 ! -o eth+ -m physdev --physdev-is-bridged -m set --match-set KUBE-LB dst,dst '
                        '-m addrtype --src-type LOCAL --limit-iface-in -m frobnicate --zap 3 -p sctp '
                        '-m sctp --sport 1:1024 -j MARK --set-mark 0x1/0xff')
    assert r.option("i").value == "cni0" and r.option("o").negated and r.option("o").value == "eth+"
    assert r.option("physdev-is-bridged", "physdev") is not None
    assert r.option("match-set").values == ("KUBE-LB", "dst,dst")
    assert r.option("src-type", "addrtype").value == "LOCAL"
    assert r.option("sport", "sctp").value == "1:1024"
    assert r.unknown == ("match module 'frobnicate'",)
    assert r.target == "MARK" and r.target_option("set-mark").value == "0x1/0xff"


def test_restore_commands_build_the_resulting_state():
    text = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-OLD - [0:0]
:KUBE-SVC-NEW - [0:0]
-A KUBE-SVC-OLD -j RETURN
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-NEW
-A KUBE-SERVICES -d 10.96.0.2/32 -j KUBE-SVC-OLD
-I KUBE-SERVICES 1 -d 10.96.0.3/32 -j KUBE-SVC-NEW
-D KUBE-SERVICES -d 10.96.0.2/32 -j KUBE-SVC-OLD
-F KUBE-SVC-OLD
-X KUBE-SVC-OLD
-A PREROUTING -j KUBE-SERVICES
COMMIT
"""
    d = parse(text)
    assert d.problems == []
    assert list(d.tables["nat"].chains) == ["KUBE-SERVICES", "KUBE-SVC-NEW", "PREROUTING"]
    assert [r.spec for r in d.chain("nat", "KUBE-SERVICES").rules] == [
        "-d 10.96.0.3/32 -j KUBE-SVC-NEW", "-d 10.96.0.1/32 -j KUBE-SVC-NEW"]
    assert d.chain("nat", "PREROUTING").policy == "ACCEPT"
    assert d.tables["nat"].deleted == ["KUBE-SVC-OLD"]


def test_fast_paths_agree_with_the_parser():
    """table_spans and chain_names (the applier's and proxier's str.find paths over 10 MB texts)
    see the same tables and chains as parse()."""
    text = ("*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\n-A KUBE-FORWARD -j ACCEPT\nCOMMIT\n"
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-A\nCOMMIT\n")
    spans = table_spans(text)
    assert list(spans) == list(parse(text).tables) == ["filter", "nat"]
    for name, (start, end) in spans.items():
        assert text[end:].startswith("COMMIT") and text[:start].endswith(f"*{name}")
    assert chain_names(text) == {t.name: frozenset(t.chains) for t in parse(text).tables.values()}


def test_bad_lines_are_reported_not_fatal():
    text = """garbage before tables
*filter
:KUBE-A - [0:0]
-A KUBE-MISSING -j ACCEPT
-A KUBE-A -m comment --comment "unterminated -j ACCEPT
-A KUBE-A -j DROP
-X INPUT
:bad
COMMIT
COMMIT
*nat
"""
    d = parse(text)
    assert [r.spec for r in d.chain("filter", "KUBE-A").rules] == ["-j DROP"]
    msgs = "\n".join(d.problems)
    for expected in ("line 1:", "undeclared chain KUBE-MISSING", "line 5:", "built-in chain INPUT",
                     "bad chain declaration", "COMMIT outside a table", "'nat' has no COMMIT"):
        assert expected in msgs
    with pytest.raises(DumpError, match="line 1"):
        parse(text, strict=True)


def test_empty_and_comment_only_input():
    assert parse("").tables == {} and parse("# nothing\n\n").problems == []


def test_counters_given_as_an_option_and_lazy_split():
    r = parse_rule("INPUT", "-c 7 420 -p tcp -j ACCEPT")
    assert r.counters == (7, 420) and r.target == "ACCEPT" and r.option("p").value == "tcp"
    with pytest.raises(ValueError):
        parse_rule("INPUT", '-m comment --comment "open -j ACCEPT')
