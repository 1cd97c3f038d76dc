"""The proxy-mode registry: every caller reads it, and a new mode is one package + one registry line.

The "package" here is this test module (its hooks are named by module path, as a real mode's
are) and the "line" is ``modes.register(FAKE)``; with it, ``netemu proxy render --mode fake``,
``netemu agent --proxy-mode fake``, ``netemu up --proxy-mode fake`` and ``netemu doctor`` all
know the mode, and nothing else in netemu changed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from netemu import features
from netemu.agent.proxy import modes
from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.model import NodeInfo, ProxyConfig
from netemu.agent.proxy.proxier import Proxier, SyncResult
from netemu.cli.main import UsageError, build_parser, main

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: http, port: 80, protocol: TCP}]
"""


# ---- the fake mode's "package": its proxier and renderer hooks ---------------------------

class FakeProxier(Proxier):
    """Programs nothing: remembers what it would have programmed."""

    def __init__(self, node, config, *, exec_, flavour):
        super().__init__(node, config)
        self.exec, self.flavour, self.synced = exec_, flavour, []

    def _sync_rules(self, full, changed, services, endpoints) -> SyncResult:
        self.synced.append(sorted(str(spn) for spn in self.service_map))
        return SyncResult(ok=True, full=full, changed=changed)


def make_fake_proxier(node, config, *, exec_, fake_flavour="plain"):
    return FakeProxier(node, config, exec_=exec_, flavour=fake_flavour)


def render_fake(services, slices, node, config, *, problems, fake_shout=False) -> modes.Rendering:
    lines = [f"fake {node.name}: {s['metadata']['namespace']}/{s['metadata']['name']}" for s in services]
    text = "\n".join(lines) + "\n"
    return modes.Rendering(text.upper() if fake_shout else text, f"{len(lines)} fake rules")


FAKE = modes.Mode(
    "fake", "fake proxy mode", ("nf_conntrack",), "nothing is faked",
    proxier=f"{__name__}:make_fake_proxier", renderer=f"{__name__}:render_fake",
    options=(modes.Option("--fake-flavour", "how the fake proxier programs nothing", ("proxier",),
                          ("plain", "spicy"), "plain"),
             modes.Option("--fake-shout", "render in capitals", ("renderer",), switch=True)))


@pytest.fixture
def fake_mode():
    modes.register(FAKE)          # the one registry line
    yield FAKE
    modes.unregister("fake")


# ---- the registry as every caller sees it -------------------------------------------------

@pytest.fixture
def sketch_mode():
    """A mode known to the registry (its kernel needs, its cleanup) that nothing can run yet."""
    modes.register(modes.Mode("sketch", "sketch proxy mode", ("nf_conntrack",), "nothing works"))
    yield
    modes.unregister("sketch")


def test_the_registry_knows_three_modes_and_runs_them(sketch_mode):
    assert modes.names()[:3] == ("iptables", "nftables", "ipvs")
    assert modes.selectable() == ("iptables", "nftables", "ipvs") and modes.DEFAULT == "iptables"
    assert [m.name for m in modes.with_hook("cleanup")] == ["iptables", "nftables", "ipvs"]
    assert modes.choose("ipvs").name == "ipvs"
    with pytest.raises(modes.ModeError, match="not yet implemented"):
        modes.choose("sketch")
    with pytest.raises(modes.ModeError, match="choose one of iptables"):
        modes.choose("userspace")


def test_features_learn_each_modes_kernel_needs_from_the_registry(fake_mode):
    for mode in modes.known():
        need = features.NEEDS[f"proxy-mode:{mode.name}"]
        assert (need.what, need.features, need.without) == (mode.title, mode.kernel, mode.without)
    assert features.wants_for(proxy_mode="fake") == ["proxy-mode:fake"]
    assert list(features.NEEDS)[:4] == ["proxy-mode:iptables", "proxy-mode:nftables", "proxy-mode:ipvs",
                                        "proxy-mode:fake"]


def test_agent_start_up_imports_no_mode_package():
    """`netemu agent` builds its parser from the registry without importing any mode: the
    agent loads only the mode it runs, when it runs it."""
    code = ("import sys; from netemu.cli.main import _load_commands, build_parser; "
            "build_parser(_load_commands(['agent'])).parse_args(['agent', '--node', 'n', '--node-ip', '1.2.3.4', "
            "'--kubeconfig', 'k']); "
            "print(sorted(m for m in sys.modules if m.startswith('netemu.agent.proxy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['netemu.agent.proxy', 'netemu.agent.proxy.modes']"


def test_iptables_flags_offer_what_the_applier_takes():
    """The registry spells the iptables backends without importing the mode (it stays lean):
    they must be the applier's."""
    from netemu.agent.proxy.xtables.apply import BACKEND_CHOICES, BACKENDS

    flags = {(o.flag, o.uses): o.choices for o in modes.get("iptables").options}
    assert flags[("--iptables-backend", ("proxier",))] == BACKEND_CHOICES
    assert flags[("--backend", ("tracer",))] == flags[("--backend", ("cleanup",))] == BACKENDS


def test_iptables_factory_resolves_auto_to_the_systems_alternative():
    def kernel(argv, input=None):
        return Result(0, "iptables v1.8.9 (legacy)\n" if argv == ["iptables", "--version"] else "")

    make = modes.choose("iptables").hook("proxier")
    proxier = make(NodeInfo("n1", ("10.0.0.1",)), ProxyConfig(), exec_=kernel, iptables_backend="auto")
    assert proxier.backend == "legacy"
    assert make(NodeInfo("n1", ("10.0.0.1",)), ProxyConfig(), exec_=kernel, iptables_backend="nft").backend == "nft"


# ---- a new mode: selected by every command, nothing else changed --------------------------

def test_proxy_render_selects_the_registered_mode(fake_mode, tmp_path, capsys):
    (tmp_path / "svc.yaml").write_text(SERVICE)
    assert main(["proxy", "render", "--mode", "fake", "--node", "n1", "-f", str(tmp_path / "svc.yaml"),
                 "--fake-shout"]) == 0
    out, err = capsys.readouterr()
    assert out == "FAKE N1: DEFAULT/WEB\n" and "-> 1 fake rules" in err
    # another mode's flag is refused, in one line
    assert main(["proxy", "render", "--mode", "fake", "--node", "n1", "-f", str(tmp_path / "svc.yaml"),
                 "--save-form"]) == 2
    assert "--save-form is an option of proxy mode iptables, not fake" in capsys.readouterr().err
    # a mode without a tracer cannot trace
    assert main(["trace", "--mode", "fake", "-f", str(tmp_path / "svc.yaml"), "--src", "10.0.0.1",
                 "--dst", "10.96.0.50", "--dport", "80"]) == 2
    assert "--mode fake: not yet implemented (iptables, nftables, ipvs are)" in capsys.readouterr().err


def test_agent_runs_the_registered_mode(fake_mode, tmp_path, monkeypatch, capsys):
    from netemu.agent import agent

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    made = []
    monkeypatch.setattr(agent, "run_agent", lambda config: made.append(agent.make_proxier(config)) or 0)
    assert main(["agent", "--node", "w1", "--node-ip", "172.18.0.3", "--kubeconfig", str(kubeconfig),
                 "--state-dir", str(tmp_path / "s"), "--proxy-mode", "fake", "--fake-flavour", "spicy"]) == 0
    [proxier] = made
    assert isinstance(proxier, FakeProxier) and proxier.flavour == "spicy" and proxier.node.name == "w1"
    proxier.load([{"metadata": {"namespace": "default", "name": "web"},
                   "spec": {"clusterIP": "10.96.0.50", "ports": [{"name": "http", "port": 80}]}}], [])
    assert proxier.sync().ok and proxier.synced == [["default/web:http"]]
    # the agent's choices come from the registry too: an unknown mode is refused before anything runs
    with pytest.raises(SystemExit):
        main(["agent", "--node", "w1", "--node-ip", "172.18.0.3", "--kubeconfig", str(kubeconfig),
              "--proxy-mode", "userspace"])
    assert "invalid choice: 'userspace'" in capsys.readouterr().err


def test_up_hands_the_modes_flags_to_every_agent(fake_mode, sketch_mode):
    from netemu.cli import cluster_cmd
    from netemu.emulator.plan import agent_argv, make_plan
    from topologies.cluster import ClusterTopo

    args = build_parser(cluster_cmd.COMMANDS).parse_args(["up", "--proxy-mode", "fake", "--fake-flavour", "spicy"])
    proxy_args = cluster_cmd.proxy_argv(args)
    assert proxy_args == ["--fake-flavour", "spicy"]
    plan = make_plan(ClusterTopo(1), "/tmp/netemu-modes-test", "172.31.250.0/24")
    argv = agent_argv(plan, plan.workers[0], "/py", "/kc", "fake", proxy_args)
    assert argv[argv.index("--proxy-mode") + 1:argv.index("--proxy-mode") + 4] == ["fake", "--fake-flavour", "spicy"]
    default = build_parser(cluster_cmd.COMMANDS).parse_args(["up"])
    assert cluster_cmd.proxy_argv(default) == ["--iptables-backend", "auto"]
    for bad, message in ((["--proxy-mode", "sketch"], "not yet implemented"),
                         (["--proxy-mode", "fake", "--iptables-backend", "nft"], "option of proxy mode iptables")):
        with pytest.raises(UsageError, match=message):
            cluster_cmd.proxy_argv(build_parser(cluster_cmd.COMMANDS).parse_args(["up", *bad]))


def test_up_takes_a_proxy_mode_per_node(fake_mode, sketch_mode):
    """--node-proxy-mode NODE=MODE: that node's agent runs MODE (with MODE's default flags); an
    unknown node or mode is refused before anything is made."""
    from netemu.cli import cluster_cmd
    from netemu.emulator.supervisor import Options, Supervisor
    from netemu.emulator.plan import make_plan
    from topologies.cluster import ClusterTopo

    assert cluster_cmd.node_proxy_modes(["worker2=fake"]) == {"worker2": "fake"}
    for bad, message in ((["worker2"], "expected NODE=MODE"), (["worker2=sketch"], "not yet implemented"),
                         (["worker2=nope"], "choose one of")):
        with pytest.raises(UsageError, match=message):
            cluster_cmd.node_proxy_modes(bad)
    plan = make_plan(ClusterTopo(2), "/tmp/netemu-modes-test", "172.31.250.0/24")
    plan = cluster_cmd.with_node_modes(plan, {"worker2": "fake"})
    sup = Supervisor(plan, None, Options())
    assert [sup.node_proxy_mode(n) for n in plan.workers] == ["iptables", "fake"]
    assert sup.cluster_doc()["nodes"]["worker2"]["proxy_mode"] == "fake"
    with pytest.raises(UsageError, match="no worker node worker7"):
        cluster_cmd.with_node_modes(plan, {"worker7": "fake"})
    assert sup.set_agent("worker9", "stop") == {"error": "no agent on node 'worker9' (nodes with one: )"}


def test_every_mode_package_is_in_the_independence_contract():
    """The third line a new mode writes: .importlinter keeps mode packages from importing each other."""
    import configparser
    from pathlib import Path

    contract = configparser.ConfigParser()
    contract.read(Path(__file__).resolve().parents[2] / ".importlinter")
    listed = set(contract["importlinter:contract:proxy-modes"]["modules"].split())
    packages = {".".join(hook.split(":")[0].split(".")[:4])      # netemu.agent.proxy.MODE[.module]:attr
                for m in modes.MODES for hook in (m.proxier, m.renderer, m.tracer, m.cleanup) if hook}
    assert packages == {f"netemu.agent.proxy.{m.name}" for m in modes.MODES} and packages <= listed


def test_two_modes_may_share_a_flag(fake_mode):
    """A second mode declaring --fake-flavour: the flag is offered once, with both modes' choices,
    and reaches whichever mode is chosen."""
    import argparse

    sour = modes.register(FAKE._replace(name="fake2", options=(
        modes.Option("--fake-flavour", "its own flavours", ("proxier",), ("plain", "sour"), "plain"),)))
    try:
        p = argparse.ArgumentParser()
        modes.add_options(p, "proxier")
        args = p.parse_args(["--fake-flavour", "sour"])
        assert modes.options_from(args, sour.name, "proxier") == {"fake_flavour": "sour"}
        assert modes.options_from(args, "fake", "proxier") == {"fake_flavour": "sour"}   # fake's hook checks it
        assert "fake mode: how the fake proxier" in p.format_help() and "fake2 mode: its own" in p.format_help()
        with pytest.raises(modes.ModeError, match="--fake-flavour is an option of proxy mode fake, not iptables"):
            modes.options_from(args, "iptables", "proxier")
    finally:
        modes.unregister("fake2")
