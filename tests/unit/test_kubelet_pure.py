"""Pure kubelet logic: Node/Lease objects and flags, pod status and phase, probes, back-off,
termination timeline, log tailing."""

import pytest

from netemu.agent.kubelet import nodestatus as nst
from netemu.agent.kubelet.backoff import Backoff
from netemu.agent.kubelet.logserver import select_lines
from netemu.agent.kubelet.probes import (ProbeSpec, ProbeState, active_probes, container_ready,
                                         container_started, resolve_port)
from netemu.agent.kubelet.status import ContainerRecord, comparable, pod_phase, pod_status
from netemu.agent.kubelet.termination import Termination, grace_seconds
from netemu.agent.runtime.nodenet import peer_routes


# -- node --------------------------------------------------------------------------------------

def test_capacity_labels_taints_parse_and_reject_bad_input():
    cap = nst.parse_capacity("cpu=4,memory=8Gi")
    assert cap["cpu"] == "4" and cap["memory"] == "8Gi" and cap["pods"] == "110"
    assert nst.parse_labels("zone=a,node-role.kubernetes.io/worker=") == {"zone": "a", "node-role.kubernetes.io/worker": ""}
    assert nst.parse_taints("dedicated=gpu:NoSchedule,spot:PreferNoSchedule") == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, {"key": "spot", "effect": "PreferNoSchedule"}]
    for bad, fn in (("cpu=lots", nst.parse_capacity), ("cpu", nst.parse_capacity), ("a=b:Sometimes", nst.parse_taints),
                    ("bad key=x", nst.parse_labels), ("k=v", nst.parse_taints)):
        with pytest.raises(ValueError):
            fn(bad)


def test_node_object_registers_not_ready_with_addresses_and_labels():
    node = nst.node_object("w1", "172.18.0.3", nst.parse_capacity("pods=50"), {"zone": "a"},
                           nst.parse_taints("x:NoSchedule"), now=1000.0)
    st = node["status"]
    assert st["addresses"] == [{"type": "InternalIP", "address": "172.18.0.3"}, {"type": "Hostname", "address": "w1"}]
    assert st["capacity"]["pods"] == "50" and st["allocatable"] == st["capacity"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "w1" and node["metadata"]["labels"]["zone"] == "a"
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
    assert node["spec"]["taints"] == [{"key": "x", "effect": "NoSchedule"}]


def test_ready_transition_time_moves_only_on_change():
    c1 = nst.node_conditions([], False, 100.0)
    c2 = nst.node_conditions(c1, True, 200.0)
    c3 = nst.node_conditions(c2, True, 300.0)
    r2, r3 = ([c for c in cs if c["type"] == "Ready"][0] for cs in (c2, c3))
    assert r2["status"] == "True" and r2["lastTransitionTime"] == r3["lastTransitionTime"]
    assert r3["lastHeartbeatTime"] != r2["lastHeartbeatTime"]
    assert {c["type"] for c in c3} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}


def test_lease_is_owned_by_node_and_routes_skip_self_and_incomplete_nodes():
    lease = nst.lease_object("w1", "uid-1", 1000.5, 40)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert lease["spec"]["renewTime"].endswith(".500000Z")

    def node(name, cidr, ip):
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
    nodes = [node("w1", "10.244.1.0/24", "172.18.0.3"), node("w2", "10.244.2.0/24", "172.18.0.4"),
             node("w3", None, "172.18.0.5")]
    assert peer_routes(nodes, "w1") == {"10.244.2.0/24": "172.18.0.4"}


# -- pod status --------------------------------------------------------------------------------

def rec(name, state, exit_code=None, last=None, ready=False):
    r = ContainerRecord(name, "img", state=state, exit_code=exit_code, started_at=10.0, ready=ready,
                        last_terminated=last)
    r.reason = {"waiting": "ContainerCreating", "terminated": "Error" if exit_code else "Completed"}.get(state, "")
    return r


@pytest.mark.parametrize("states,policy,phase", [
    ([("waiting", None, None)], "Always", "Pending"),
    ([("running", None, None), ("waiting", None, None)], "Always", "Pending"),
    ([("running", None, None)], "Never", "Running"),
    ([("terminated", 0, None)], "Never", "Succeeded"),
    ([("terminated", 1, None)], "Never", "Failed"),
    ([("terminated", 1, None)], "OnFailure", "Running"),
    ([("terminated", 0, None)], "Always", "Running"),
    ([("terminated", 0, None), ("terminated", 2, None)], "Never", "Failed"),
    ([("waiting", None, {"exitCode": 1})], "Always", "Running"),      # CrashLoopBackOff
])
def test_phase_follows_upstream_getphase(states, policy, phase):
    assert pod_phase([rec(f"c{i}", s, e, l) for i, (s, e, l) in enumerate(states)], policy) == phase


def test_status_conditions_and_container_statuses():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    a, b = rec("a", "running", ready=True), rec("b", "running", ready=False)
    b.restart_count, b.last_terminated = 2, {"exitCode": 137, "reason": "Error"}
    st = pod_status(pod, [a, b], pod_ip="10.244.1.5", host_ip="172.18.0.3", sandbox_ready=True,
                    start_time=5.0, now=20.0)
    conds = {c["type"]: c for c in st["conditions"]}
    assert st["phase"] == "Running" and st["podIP"] == "10.244.1.5" and st["podIPs"] == [{"ip": "10.244.1.5"}]
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["ContainersReady"]["message"] == "containers with unready status: [b]"
    assert conds["PodScheduled"]["status"] == conds["Initialized"]["status"] == "True"
    cs = {c["name"]: c for c in st["containerStatuses"]}
    assert cs["b"]["restartCount"] == 2 and cs["b"]["lastState"]["terminated"]["exitCode"] == 137
    assert "running" in cs["a"]["state"] and cs["a"]["ready"] is True
    b.ready = True
    pod["status"] = st
    st2 = pod_status(pod, [a, b], pod_ip="10.244.1.5", host_ip="172.18.0.3", sandbox_ready=True,
                     start_time=5.0, now=30.0)
    ready2 = [c for c in st2["conditions"] if c["type"] == "Ready"][0]
    assert ready2["status"] == "True" and "reason" not in ready2 and ready2["lastTransitionTime"] != conds["Ready"]["lastTransitionTime"]
    assert comparable(st2) != comparable(st)
    pod["status"] = st2
    st3 = pod_status(pod, [a, b], pod_ip="10.244.1.5", host_ip="172.18.0.3", sandbox_ready=True,
                     start_time=5.0, now=40.0)
    assert comparable(st3) == comparable(st2)


def test_completed_pod_is_not_ready_with_reason_podcompleted():
    pod = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "a"}]}}
    st = pod_status(pod, [rec("a", "terminated", 0)], pod_ip="10.244.1.5", host_ip="h", sandbox_ready=True,
                    start_time=1.0, now=2.0)
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert st["phase"] == "Succeeded" and ready["reason"] == "PodCompleted"
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


# -- probes ------------------------------------------------------------------------------------

def spec(kind, **kw):
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, **kw}
    return ProbeSpec.from_container({"name": "c", f"{kind}Probe": probe}, kind)


def test_probe_defaults_and_thresholds():
    s = spec("readiness")
    assert (s.period, s.timeout, s.success_threshold, s.failure_threshold) == (10, 1, 1, 3)
    assert spec("liveness", successThreshold=5).success_threshold == 1       # must be 1 upstream
    assert ProbeSpec.from_container({"name": "c"}, "readiness") is None
    with pytest.raises(ValueError):
        ProbeSpec.from_container({"name": "c", "livenessProbe": {"periodSeconds": 1}}, "liveness")


def test_readiness_needs_success_threshold_and_flips_after_failure_threshold():
    st = ProbeState(spec("readiness", successThreshold=2, failureThreshold=2, initialDelaySeconds=5,
                         periodSeconds=3), started_at=100.0)
    assert st.result is False and st.due_at() == 105.0
    st.record(True, 105.0)
    assert st.result is False and st.due_at() == 108.0
    st.record(True, 108.0)
    assert st.result is True
    st.record(False, 111.0)
    assert st.result is True
    st.record(True, 114.0)
    st.record(False, 117.0)
    assert st.result is True          # failures must be consecutive
    st.record(False, 120.0)
    assert st.result is False and not st.wants_restart


def test_liveness_starts_healthy_and_wants_restart_after_failures():
    st = ProbeState(spec("liveness", failureThreshold=2), started_at=0.0)
    assert st.result is True
    st.record(False, 1.0)
    assert not st.wants_restart
    st.record(False, 2.0)
    assert st.wants_restart


def test_startup_gates_liveness_and_readiness():
    states = {k: ProbeState(spec(k), started_at=0.0) for k in ("startup", "liveness", "readiness")}
    assert [s.spec.kind for s in active_probes(states)] == ["startup"]
    assert not container_started(states, True) and not container_ready(states, True)
    states["readiness"].record(True, 1.0)       # would be ready, but startup has not passed
    assert not container_ready(states, True)
    states["startup"].record(True, 2.0)
    assert sorted(s.spec.kind for s in active_probes(states)) == ["liveness", "readiness"]
    assert container_started(states, True) and container_ready(states, True)
    assert not container_ready(states, False)
    assert container_ready({}, True)


def test_named_probe_port():
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", c) == 8080 and resolve_port(81, c) == 81 and resolve_port("82", c) == 82
    with pytest.raises(ValueError):
        resolve_port("metrics", c)


# -- back-off and termination -------------------------------------------------------------------

def test_backoff_doubles_to_cap_and_resets_after_long_run():
    b = Backoff(initial=10, maximum=40)
    delays = [b.record_exit("k", now) for now in (0, 10, 30, 70, 110)]
    assert delays == [10, 20, 40, 40, 40]
    assert b.ready_at("k") == 150 and b.in_backoff("k", 149) and not b.in_backoff("k", 150)
    assert b.record_exit("k", 300, ran_for=100) == 10
    b.forget_prefix("k")
    assert b.ready_at("k") == 0


def test_grace_period_and_timeline():
    pod = {"metadata": {}, "spec": {"terminationGracePeriodSeconds": 5}}
    assert grace_seconds(pod) == 5 and grace_seconds({"metadata": {}, "spec": {}}) == 30
    deleting = {"metadata": {"deletionGracePeriodSeconds": 3}, "spec": {"terminationGracePeriodSeconds": 5}}
    t = Termination.begin(deleting, now=100.0)
    assert t.action(101.0, True) == "wait" and t.action(103.0, True) == "kill" and t.action(101.0, False) == "finish"
    t.shorten({"metadata": {"deletionGracePeriodSeconds": 0}}, now=101.0)
    assert t.deadline == 101.0
    t.shorten({"metadata": {"deletionGracePeriodSeconds": 60}}, now=101.0)
    assert t.deadline == 101.0


def test_log_tail_and_limit():
    data = b"a\nb\nc\n"
    assert select_lines(data, 2, None) == b"b\nc\n"
    assert select_lines(data, 0, None) == b""
    assert select_lines(data, None, 3) == b"a\nb"
    assert select_lines(data, None, None) == data


def test_the_node_cache_keeps_of_other_nodes_only_what_routes_need():
    from netemu.agent.kubelet.kubelet import node_for_cache
    from netemu.agent.runtime.nodenet import peer_routes
    full = [{"metadata": {"name": n, "uid": n, "resourceVersion": "7", "labels": {"a": "b"}},
             "spec": {"podCIDR": f"10.244.{i}.0/24", "taints": []},
             "status": {"addresses": [{"type": "InternalIP", "address": f"172.18.0.{i + 3}"},
                                      {"type": "Hostname", "address": n}],
                        "conditions": [{"type": "Ready", "status": "True"}], "capacity": {"pods": "110"}}}
            for i, n in enumerate(("me", "w2", "w3"))]
    slim = [node_for_cache("me")(n) for n in full]
    assert slim[0] is full[0]                                  # its own Node stays whole
    assert "conditions" not in slim[1]["status"] and "labels" not in slim[1]["metadata"]
    assert peer_routes(slim, "me") == peer_routes(full, "me") == {"10.244.1.0/24": "172.18.0.4",
                                                                   "10.244.2.0/24": "172.18.0.5"}
