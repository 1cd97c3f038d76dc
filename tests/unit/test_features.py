"""The pure half of netemu.features: parsing, judging evidence, and what needs the lab VM."""

from __future__ import annotations

import pytest

from netemu import features
from netemu.features import Verdict, judge, problems, wants_for

CONFIG_TEXT = """\
#
# Automatically generated file; DO NOT EDIT.
CONFIG_VETH=y
CONFIG_NF_CONNTRACK=m
# CONFIG_IP_VS is not set
CONFIG_LOCALVERSION="-lab"
"""


def test_parse_kernel_config_reads_set_module_and_not_set():
    config = features.parse_kernel_config(CONFIG_TEXT)
    assert config["CONFIG_VETH"] == "y"
    assert config["CONFIG_NF_CONNTRACK"] == "m"
    assert config["CONFIG_IP_VS"] == "n"
    assert config["CONFIG_LOCALVERSION"] == "-lab"
    assert "CONFIG_DUMMY" not in config


@pytest.mark.parametrize("output, backend", [
    ("iptables v1.8.9 (nf_tables)", "nf_tables"),
    ("iptables v1.8.9 (legacy)", "legacy"),
    ("iptables v1.4.21", None),
    ("", None),
])
def test_iptables_backend(output, backend):
    assert features.iptables_backend(output) == backend


def test_probe_result_beats_the_kernel_config():
    # configured as a module, but the kernel refused to create one: the kernel is right
    verdict = judge("dummy", config={"CONFIG_DUMMY": "m"}, loaded=False, loadable=True,
                    probe=(False, "Error: Unknown device type."))
    assert verdict.available is False
    assert "Unknown device type" in verdict.evidence


def test_loaded_module_is_available_without_config():
    assert judge("ip_vs", config=None, loaded=True, loadable=False, probe=None).available is True


@pytest.mark.parametrize("value, loadable, expected, words", [
    ("y", False, True, "built in"),
    ("m", True, True, "loadable module"),
    ("m", False, False, "no module installed"),
    ("n", True, False, "not set"),
])
def test_judge_from_kernel_config(value, loadable, expected, words):
    verdict = judge("sch_netem", config={"CONFIG_NET_SCH_NETEM": value}, loaded=False,
                    loadable=loadable, probe=None)
    assert verdict.available is expected
    assert words in verdict.evidence


def test_symbol_absent_from_a_known_config_means_missing():
    verdict = judge("openvswitch", config={"CONFIG_VETH": "y"}, loaded=False, loadable=False, probe=None)
    assert verdict.available is False


def test_no_evidence_at_all_is_unknown_not_missing():
    verdict = judge("openvswitch", config=None, loaded=False, loadable=False, probe=None)
    assert verdict.available is None
    assert judge("openvswitch", config=None, loaded=False, loadable=True, probe=None).available is True


def test_wants_for_proxy_modes_switch_and_links():
    assert wants_for(proxy_mode="ipvs") == ["proxy-mode:ipvs"]
    assert wants_for(switch="ovs") == ["switch:ovs"]
    assert wants_for(switch="linuxbridge") == []
    assert wants_for(link={"delay": "5ms"}) == ["link:netem"]
    assert wants_for(link={"loss": 1, "bw": 10}) == ["link:netem", "link:bw"]
    assert wants_for(link={"bw": 10, "delay": None, "loss": 0}) == ["link:bw"]
    assert wants_for() == []


@pytest.mark.parametrize("kwargs", [{"proxy_mode": "userspace"}, {"switch": "p4"}])
def test_wants_for_rejects_unknown_choices(kwargs):
    with pytest.raises(ValueError, match="unknown"):
        wants_for(**kwargs)


def _kernel(**available: bool | None) -> dict[str, Verdict]:
    """A made-up kernel: every feature present unless told otherwise."""
    verdicts = {name: Verdict(name, True, "test") for name in features.FEATURES}
    for name, value in available.items():
        verdicts[name] = Verdict(name, value, f"{name} evidence")
    return verdicts


def test_ipvs_mode_without_ip_vs_points_to_the_lab_vm():
    found = problems(_kernel(ip_vs=False), ["proxy-mode:ipvs"])
    assert [(p.feature, p.fatal) for p in found] == [("ip_vs", True)]
    message = found[0].message
    assert message.startswith("IPVS proxy mode needs ip_vs: not in this kernel")
    assert "run in the lab VM (docs/labvm.md)" in message


def test_tclink_delay_without_netem_says_it_would_be_silently_ignored():
    [problem] = problems(_kernel(sch_netem=False), wants_for(link={"delay": "5ms"}))
    assert problem.fatal
    assert "TCLink would print '5ms delay' and apply none" in problem.message


def test_unknown_feature_is_a_warning_not_an_error():
    [problem] = problems(_kernel(openvswitch=None), ["switch:ovs"])
    assert not problem.fatal
    assert "could not tell" in problem.message


def test_everything_present_means_no_problems():
    wants = [*wants_for(proxy_mode="ipvs", switch="ovs", link={"delay": "1ms", "bw": 5}), "pods"]
    assert problems(_kernel(), wants) == []


def test_a_feature_missing_from_the_verdicts_is_unverified():
    verdicts = _kernel()
    del verdicts["dummy"]
    [problem] = problems(verdicts, ["proxy-mode:ipvs"])
    assert (problem.feature, problem.fatal) == ("dummy", False)


def test_require_raises_with_every_fatal_message_and_returns_warnings():
    with pytest.raises(features.FeatureMissing) as err:
        features.require(["proxy-mode:ipvs", "switch:ovs"], _kernel(dummy=False, openvswitch=False))
    assert str(err.value).count("\n") == 1
    assert "dummy" in str(err.value) and "openvswitch" in str(err.value)
    warnings = features.require(["switch:ovs"], _kernel(openvswitch=None))
    assert [p.feature for p in warnings] == ["openvswitch"]


def test_every_need_names_known_features():
    for need in features.NEEDS.values():
        assert set(need.features) <= set(features.FEATURES)


def test_netns_probes_record_results_and_skip_missing_tools():
    calls: list[list[str]] = []

    def runner(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        if argv[0] == "tc":
            return 127, "tc: not found"
        if "dummy" in argv:
            return 2, "Error: Unknown device type."
        return 0, ""

    results = features._netns_probes("nfeat1", runner)
    assert results["dummy"] == (False, "link add nfprobe0 type dummy in a scratch netns: Error: Unknown device type.")
    assert results["veth"][0] is True
    assert "sch_netem" not in results and "sch_htb" not in results   # no tc: no evidence
    assert all("nfeat1" in argv for argv in calls)


def test_require_for_uses_the_cached_detection(monkeypatch):
    calls = []

    def fake_detect():
        calls.append(1)
        return _kernel(sch_netem=False)

    monkeypatch.setattr(features, "detect", fake_detect)
    features.detected.cache_clear()
    try:
        assert features.require_for(link={"bw": 10}) == []
        with pytest.raises(features.FeatureMissing, match="sch_netem"):
            features.require_for(link={"delay": "5ms"})
        assert len(calls) == 1
    finally:
        features.detected.cache_clear()
