"""`netemu features` / `netemu doctor`: argument handling and verdicts on a made-up kernel."""

from __future__ import annotations

import pytest

from netemu import features
from netemu.cli import features_cmd
from netemu.cli.main import UsageError, main
from netemu.features import Verdict


def test_parse_link_options():
    assert features_cmd.parse_link_options("delay=5ms, loss=1,bw=10") == {"delay": "5ms", "loss": "1", "bw": "10"}
    assert features_cmd.parse_link_options(None) == {}


@pytest.mark.parametrize("text, words", [("delay", "NAME=VALUE"), ("delay=", "NAME=VALUE"),
                                         ("latency=5ms", "unknown option 'latency'")])
def test_parse_link_options_rejects_bad_input(text, words):
    with pytest.raises(UsageError, match=words):
        features_cmd.parse_link_options(text)


@pytest.fixture
def kernel_without_netem(monkeypatch):
    verdicts = {name: Verdict(name, True, "test") for name in features.FEATURES}
    verdicts["sch_netem"] = Verdict("sch_netem", False, "CONFIG_NET_SCH_NETEM is not set")
    monkeypatch.setattr(features, "detect", lambda runner=None, probe=None: verdicts)


def test_doctor_fails_and_names_the_lab_vm_for_a_delayed_link(kernel_without_netem, capsys):
    assert main(["doctor", "--proxy-mode", "iptables", "--link", "delay=5ms"]) == 1
    out = capsys.readouterr().out
    assert "proxy mode iptables: ok" in out
    assert "link delay=5ms: NEEDS THE LAB VM" in out
    assert "docs/labvm.md" in out


def test_doctor_passes_when_the_kernel_has_what_is_asked(kernel_without_netem, capsys):
    assert main(["doctor", "--proxy-mode", "ipvs", "--switch", "ovs", "--link", "bw=10"]) == 0
    assert "NEEDS THE LAB VM" not in capsys.readouterr().out


def test_doctor_bad_link_option_is_a_usage_error(kernel_without_netem, capsys):
    assert main(["doctor", "--link", "speed=fast"]) == 2
    assert "unknown option 'speed'" in capsys.readouterr().err


def test_features_json_lists_every_feature(kernel_without_netem, capsys):
    import json

    assert main(["features", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["features"]) == set(features.FEATURES)
    assert report["features"]["sch_netem"]["available"] is False


def test_doctor_without_a_mode_reports_ipvs_but_only_the_default_mode_decides(monkeypatch, capsys):
    verdicts = {name: Verdict(name, True, "test") for name in features.FEATURES}
    verdicts["ip_vs"] = Verdict("ip_vs", False, "CONFIG_IP_VS is not set")
    monkeypatch.setattr(features, "detect", lambda runner=None, probe=None: verdicts)
    assert main(["doctor"]) == 0
    assert "proxy mode ipvs: NEEDS THE LAB VM" in capsys.readouterr().out
    assert main(["doctor", "--proxy-mode", "ipvs"]) == 1
