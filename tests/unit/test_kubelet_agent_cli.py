"""`netemu agent` flags: good ones become an AgentConfig, bad ones a one-line usage error."""

import argparse

import pytest

from netemu.cli import agent_cmd
from netemu.cli.main import UsageError


def parse(tmp_path, *extra):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    p = argparse.ArgumentParser()
    agent_cmd._add_arguments(p)
    return p.parse_args(["--node", "w1", "--node-ip", "172.18.0.3", "--kubeconfig", str(kubeconfig), *extra])


def test_flags_to_config(tmp_path):
    cfg = agent_cmd.build_config(parse(tmp_path, "--capacity", "cpu=4,pods=20", "--labels", "zone=a",
                                       "--taints", "gpu=yes:NoSchedule", "--heartbeat-interval", "2",
                                       "--iptables-backend", "legacy", "--state-dir", str(tmp_path / "s")))
    k = cfg.kubelet
    assert (k.node_name, k.node_ip, k.capacity["cpu"], k.capacity["pods"]) == ("w1", "172.18.0.3", "4", "20")
    assert k.labels == {"zone": "a"} and k.taints == [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]
    assert k.heartbeat_interval == 2 and k.lease_duration == 40
    assert cfg.proxy_options == {"iptables_backend": "legacy"} and cfg.proxy_mode == "iptables"
    assert cfg.state_dir == str(tmp_path / "s")
    auto = agent_cmd.build_config(parse(tmp_path, "--iptables-backend", "auto", "--proxy-mode", "none"))
    assert auto.proxy_options == {} and auto.proxy_mode is None
    assert auto.state_dir.endswith("/nodes/w1")


@pytest.mark.parametrize("extra,words", [
    (["--node-ip", "300.1.1.1"], "300.1.1.1"),
    (["--capacity", "cpu=many"], "quantity"),
    (["--taints", "a=b:Never"], "EFFECT"),
    (["--labels", "bad label=x"], "label"),
    (["--heartbeat-interval", "0"], "heartbeat"),
    (["--cluster-cidr", "10.244.0.0/40"], "10.244.0.0/40"),
    (["--metrics-bind-address", "nope"], "nope"),
    (["--iptables-min-sync-period", "-1"], "min-sync-period"),
    (["--iptables-min-sync-period", "40"], "min-sync-period"),
    (["--iptables-min-sync-period", "0", "--iptables-sync-period", "0"], "sync period > 0"),
])
def test_bad_flags_are_usage_errors(tmp_path, extra, words):
    with pytest.raises(UsageError, match=words):
        agent_cmd.build_config(parse(tmp_path, *extra))


def test_missing_kubeconfig(tmp_path):
    args = parse(tmp_path)
    args.kubeconfig = str(tmp_path / "none")
    with pytest.raises(UsageError, match="does not exist"):
        agent_cmd.build_config(args)


def test_sync_periods_reach_the_proxy_config(tmp_path):
    default = agent_cmd.build_config(parse(tmp_path))
    assert (default.min_sync_period, default.sync_period) == (1.0, 30.0)   # upstream's defaults
    cfg = agent_cmd.build_config(parse(tmp_path, "--iptables-min-sync-period", "0.1", "--iptables-sync-period", "10"))
    assert (cfg.min_sync_period, cfg.sync_period) == (0.1, 10.0)
