"""Scenario files: every problem found before anything starts, with FILE:LINE and the reason
(bad YAML, unknown event, time after the end, unknown target, a link option the kernel cannot
apply), variants/small/for_each expansion, and the built-in experiments all check clean."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netemu import features
from netemu.experiments import schema
from netemu.experiments.located import ScenarioError, load_text
from netemu.experiments.validate import load_plan

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def kernel(*missing: str) -> dict:
    """Verdicts of a kernel that has every feature but ``missing``."""
    return {name: features.Verdict(name, name not in missing, "test") for name in features.FEATURES}


FULL, NO_NETEM = kernel(), kernel("sch_netem")

GOOD = """\
name: demo
duration: 20
cluster:
  nodes: 2
manifests:
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {replicas: 2}}
  - {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 80, name: http}]}}
  - {apiVersion: v1, kind: Pod, metadata: {name: client}, spec: {}}
traffic:
  - {name: load, from: client, to: "svc/web:80", rate: 10}
timeline:
  - at: 5
    scale: {deployment: web, replicas: 3}
    wait: true
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, verdicts=FULL, **kw) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_plan(path, verdicts=verdicts, modes_available=("iptables",), **kw)
    return [str(p) for p in err.value.problems]


def test_a_good_scenario_parses_into_phases_and_events(tmp_path):
    plan = load_plan(write(tmp_path, GOOD), verdicts=FULL, modes_available=("iptables",))
    (run,) = plan.runs
    assert run.duration == 20 and run.cluster.nodes == 2 and run.cluster.up_argv()[:2] == ["--nodes", "2"]
    (phase,) = run.phases
    assert (phase.source, phase.target, phase.spec.rate, phase.until_end) == ("client", "svc/web:80", 10, True)
    (event,) = run.events
    assert (event.at, event.kind, event.wait, event.params["replicas"]) == (5, "scale", True, 3)
    assert event.label() == "scale web to 3"


def test_bad_yaml_names_the_line(tmp_path):
    (msg,) = problems(tmp_path, "name: x\nduration: 5\ntimeline:\n  - at: [1\n")
    assert msg.startswith(f"{tmp_path / 's.yaml'}:") and "bad YAML" in msg
    assert int(msg.split(":")[1]) >= 4


def test_unknown_event_time_after_the_end_and_unknown_targets(tmp_path):
    text = GOOD + """\
  - at: 6
    scael: {deployment: web, replicas: 3}
  - at: 25
    scale: {deployment: web, replicas: 1}
  - at: 7
    scale: {deployment: webb, replicas: 1}
  - at: 8
    agent: {node: worker9, action: stop}
  - at: 9
    service: {name: nope, session_affinity: ClientIP}
"""
    msgs = problems(tmp_path, text)
    f = str(tmp_path / "s.yaml")
    assert f"{f}:16: timeline[1]: unknown event 'scael' (did you mean scale?)" in msgs[0]
    joined = "\n".join(msgs)
    assert f"{f}:17: event at 25 s is after the end of the experiment (20 s)" in joined
    assert f"{f}:20: no Deployment 'webb' in namespace default among the manifests (Deployments: web)" in joined
    assert f"{f}:22: no node 'worker9' in this cluster" in joined
    assert f"{f}:24: no Service 'nope'" in joined
    assert len(msgs) == 5


def test_phase_problems(tmp_path):
    text = GOOD.replace('  - {name: load, from: client, to: "svc/web:80", rate: 10}', textwrap.dedent("""\
          - {name: a, from: ghost, to: "svc/web:81", rate: 10}
          - {name: b, from: node/worker, to: "svc/web:80", start: 15, duration: 10}
          - {name: c, from: client, to: "svc/web:80", per_connection: 3}
          - {name: d, from: client, to: "svc/web:80", ratee: 3}"""))
    text = text.replace("kind: Pod,", "kind: Pod,", 1) + "  - {at: 1, scale: {deployment: web, replicas: 1}}\n"
    text = text.replace("manifests:\n", "manifests:\n  - {apiVersion: v9, kind: Gizmo, metadata: {name: g}}\n")
    joined = "\n".join(problems(tmp_path, text))
    assert "s.yaml:6: manifests: v9 Gizmo" in joined and "is not a kind netemu's API server serves" in joined
    assert "no Pod 'ghost'" in joined and "port 81 is not a port of Service web" in joined
    assert "phase b ends at 25 s, after the end (20 s)" in joined
    assert "per_connection needs keepalive" in joined
    assert "unknown field 'ratee'" in joined


def test_delay_and_loss_need_netem_unless_the_kernel_has_it(tmp_path):
    text = GOOD + "  - {at: 6, link: {node: worker2, delay: 20ms, loss: 1}}\n  - {at: 7, link: {node: worker, bw: 10}}\n"
    (msg,) = problems(tmp_path, text, verdicts=NO_NETEM)
    assert msg.endswith("s.yaml:15: link delay, loss needs netem (sch_netem), which this kernel lacks: "
                        "run in the lab VM (docs/labvm.md)")
    plan = load_plan(tmp_path / "s.yaml", verdicts=FULL, modes_available=("iptables",))
    link = plan.runs[0].events[1]
    assert (link.params["delay"], link.params["loss"]) == (0.02, 1.0)


def test_event_arguments_are_checked(tmp_path):
    text = GOOD + ("  - {at: 6, link: {node: worker, state: sideways}}\n"
                   "  - {at: 6, delete_pod: {count: 2}}\n"
                   "  - {at: 6, service: {name: web}}\n"
                   "  - {at: 6, uncordon: {node: worker}, wait: true}\n"
                   "  - {at: 6, dummy_services: {count: 0}}\n")
    joined = "\n".join(problems(tmp_path, text))
    assert "'sideways': choose one of up, down" in joined
    assert "give the pod's name or a selector" in joined
    assert "change at least one of session_affinity" in joined
    assert "a uncordon event has nothing to wait for" in joined
    assert "count: must be a whole number >= 1" in joined


def test_unknown_proxy_mode_and_kernel_needs(tmp_path):
    joined = "\n".join(problems(tmp_path, GOOD.replace("nodes: 2", "nodes: 2\n  proxy_mode: ipvs")))
    assert "proxy mode 'ipvs' cannot run here (selectable: iptables)" in joined
    path = write(tmp_path, GOOD)
    with pytest.raises(ScenarioError) as err:
        load_plan(path, verdicts=kernel("nf_conntrack"), modes_available=("iptables",))
    assert "needs nf_conntrack" in str(err.value) and "lab VM" in str(err.value)


def test_for_each_proxy_mode_takes_every_selectable_mode_and_says_which_cannot_run(tmp_path):
    path = write(tmp_path, GOOD + "for_each: proxy_mode\n")
    plan = load_plan(path, verdicts=kernel("ip_vs"), modes_available=("iptables", "nftables", "ipvs"))
    assert [r.variant for r in plan.runs] == ["iptables", "nftables"]
    assert [r.cluster.proxy_mode for r in plan.runs] == ["iptables", "nftables"]
    assert len(plan.notes) == 1 and plan.notes[0].startswith("proxy mode ipvs left out") and "lab VM" in plan.notes[0]


def test_variants_and_small_override_fields(tmp_path):
    text = GOOD + textwrap.dedent("""\
        small: {duration: 10}
        variants:
          - {name: one, set: {cluster: {agent_args: [--heartbeat-interval=1]}}}
          - {name: two, set: {timeline: []}}
    """)
    path = write(tmp_path, text)
    plan = load_plan(path, verdicts=FULL, modes_available=("iptables",), small=True, seed=7)
    one, two = plan.runs
    assert (one.variant, one.duration, one.seed, one.cluster.nodes) == ("one", 10, 7, 2)
    assert one.cluster.agent_args == ("--heartbeat-interval=1",) and one.phases[0].until_end
    assert len(one.events) == 1 and two.events == () and two.cluster.agent_args == ()


def test_anchors_and_extension_fields(tmp_path):
    text = GOOD.replace("traffic:\n", "x-load: &l {from: client, to: \"svc/web:80\", rate: 5}\ntraffic:\n  - {name: x, <<: *l, rate: 7}\n")
    run = load_plan(write(tmp_path, text), verdicts=FULL, modes_available=("iptables",)).runs[0]
    assert [(p.name, p.spec.rate) for p in run.phases] == [("x", 7), ("load", 10)]


def test_duplicate_keys_and_empty_files():
    with pytest.raises(ScenarioError, match=r"f.yaml:2: 'a' is given twice"):
        load_text("a: 1\na: 2\n", "f.yaml")
    with pytest.raises(ScenarioError, match="empty"):
        load_text("", "f.yaml")


def test_merge_replaces_lists_and_merges_mappings():
    base = load_text("a: {b: 1, c: [1, 2]}\nd: 1\n", "f")
    out = schema.merge(base, load_text("a: {c: [3]}\n", "g"))
    assert out == {"a": {"b": 1, "c": [3]}, "d": 1}


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("small", [False, True])
def test_built_in_experiments_check_clean(path, small):
    plan = load_plan(path, verdicts=FULL, small=small)
    assert plan.runs and all(r.description for r in plan.runs)
    readme = (EXPERIMENTS / "README.md").read_text()
    assert f"`{path.name}`" in readme          # each has its paragraph with the expected outcome


def test_cli_check_refuses_with_the_line_and_makes_nothing(tmp_path):
    path = write(tmp_path, GOOD.replace("scale:", "scale_it:"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "netemu", "experiment", "run", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{path}:13: timeline[0]: unknown event 'scale_it'" in proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
    ok = subprocess.run([sys.executable, "-m", "netemu", "experiment", "check", str(EXPERIMENTS / "b-keepalive.yaml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK (1 run(s))" in ok.stdout


def test_a_topology_file_with_args_names_the_nodes(tmp_path):
    text = GOOD.replace("  nodes: 2\n", "  topology: {file: zones.py, class: TwoZoneTopo, args: [1]}\n"
                                         "  proxy_modes: {a1: iptables}\n")
    text += "  - {at: 6, agent: {node: a1, action: stop}}\n  - {at: 7, agent: {node: worker2, action: stop}}\n"
    (msg,) = problems(tmp_path, text)
    assert "no node 'worker2' in this cluster (nodes with an agent: a1, b1)" in msg
    run = load_plan(write(tmp_path, text.rsplit("  - {at: 7", 1)[0]), verdicts=FULL,
                    modes_available=("iptables",)).runs[0]
    assert run.cluster.topology.endswith("zones.py:TwoZoneTopo,1") and run.cluster.nodes is None
    assert run.cluster.up_argv()[:2] == ["--topo", run.cluster.topology]
    assert "--node-proxy-mode=a1=iptables" in run.cluster.up_argv()


def test_the_edge_and_its_health_checks_are_cluster_fields(tmp_path):
    edged = GOOD.replace("  nodes: 2\n", "  nodes: 2\n  edge: true\n  lb_health_check: interval=30,timeout=10,rise=3\n")
    (run,) = load_plan(write(tmp_path, edged), verdicts=FULL, modes_available=("iptables",)).runs
    assert run.cluster.edge and run.cluster.up_argv()[-2:] == ["--edge", "--lb-health-check=interval=30,timeout=10,rise=3"]
    assert "--edge" not in load_plan(write(tmp_path, GOOD), verdicts=FULL, modes_available=("iptables",)).runs[0].cluster.up_argv()
    f = tmp_path / "s.yaml"
    found = problems(tmp_path, GOOD.replace("  nodes: 2\n", "  nodes: 2\n  edge: yes-please\n  lb_health_check: rise=0\n"))
    assert f"{f}:5: scenario.cluster.edge: must be true or false, not 'yes-please'" in found
    assert f"{f}:6: scenario.cluster.lb_health_check: rise 0 and fall 2: each 1 to 10" in found
    assert f"{f}:6: scenario.cluster.lb_health_check: goes with edge: true (it is the provider load balancer's)" in found


def test_a_running_cluster_without_the_edge_cannot_stand_for_an_edge_scenario(tmp_path):
    import json

    from netemu.experiments.cluster import Handle, check_matches

    nodes = {"worker": {"role": "worker", "proxy_mode": "iptables"}, "worker2": {"role": "worker", "proxy_mode": "iptables"}}
    (tmp_path / "cluster.json").write_text(json.dumps({"nodes": nodes, "proxy_mode": "iptables", "edge": None}))
    handle = Handle(tmp_path, owned=False)
    assert check_matches(handle, schema.ClusterSpec(nodes=2)) == []
    assert check_matches(handle, schema.ClusterSpec(nodes=2, edge=True)) == [
        "the scenario wants the edge (edge: true), the cluster was brought up without --edge"]
    (tmp_path / "cluster.json").write_text(json.dumps({"nodes": nodes, "proxy_mode": "iptables", "edge": {"netns": "x"}}))
    assert check_matches(handle, schema.ClusterSpec(nodes=2, edge=True)) == []
