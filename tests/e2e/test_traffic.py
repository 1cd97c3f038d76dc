"""netemu traffic on a real cluster (one per module, the netemu_cluster fixture users get):
every endpoint seen and the spread uniform for 3 and 5 endpoints, ClientIP affinity pins a
client, a deleted backend shows up as errors and then disappears, the source address each
backend sees is masqueraded or kept exactly as the Service's policy says (from a pod, and from
an external host through NodePorts with externalTrafficPolicy Cluster and Local), and bad input
is refused before any packet. Driven through the CLI (argv, --json) and the Python API.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netemu.testing.cluster import wait_until
from netemu.traffic.spec import LoadSpec

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl, pytest.mark.netemu_cluster(nodes=3)]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def deployment(name, replicas, node_selector=None):
    spec = {"containers": [{"name": "agnhost", "image": AGNHOST,
                            "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}],
            "terminationGracePeriodSeconds": 1}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def service(name, app, type_="ClusterIP", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "selector": {"app": app}, **spec,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                               {"name": "udp", "port": 81, "targetPort": 8081, "protocol": "UDP"}]}}


@pytest.fixture(scope="module")
def world(netemu_cluster):
    c = netemu_cluster
    workers = c.workers()
    client_node = workers[-1]
    c.apply(deployment("web3", 3), deployment("web5", 5), deployment("one", 1, {"kubernetes.io/hostname": workers[0]}),
            service("web3", "web3"), service("web5", "web5"),
            service("sticky", "web3", sessionAffinity="ClientIP"),
            service("np-cluster", "one", "NodePort"), service("np-local", "one", "NodePort", externalTrafficPolicy="Local"),
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
             "spec": {"nodeName": client_node, "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}})
    for app, n in (("web3", 3), ("web5", 5), ("one", 1)):
        c.wait_ready(f"app={app}", n)
    client = wait_until("the client pod", lambda: (lambda p: p if p["status"].get("podIP") else None)(
        c.get("pod", "client")))
    for svc in ("web3", "web5"):     # ready in the API is not yet programmed on the client's node
        wait_until(f"every {svc} endpoint answering the client", lambda: (lambda r: not r.unseen and not r.errors)(
            c.traffic("client", f"svc/{svc}:80", connections=40, concurrency=4, timeout=0.5)), 60)
    return {"c": c, "client_ip": client["status"]["podIP"], "workers": workers}


def cli(c, *words, check=True):
    proc = subprocess.run([sys.executable, "-m", "netemu", "traffic", "--state-dir", str(c.state_dir), *words],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("svc, n", [("web3", 3), ("web5", 5)])
def test_every_endpoint_answers_uniformly(world, svc, n):
    out = json.loads(cli(world["c"], "--from", "client", "--to", f"svc/{svc}:80", "--connections", str(200 * n),
                         "--concurrency", "8", "--json").stdout)
    assert out["ok"] == 200 * n and out["errors"] == {}
    assert len(out["endpoints"]) == n and out["unseen"] == [] and len(out["expected"]) == n
    assert out["chi_square"]["p_value"] > 0.001, out["endpoints"]
    assert all(ips == [world["client_ip"]] for ips in out["clientips"].values())    # pod to Service: kept
    udp = world["c"].traffic("client", f"svc/{svc}:81", LoadSpec(proto="udp", requests=100 * n, concurrency=4))
    assert udp.ok == 100 * n and set(udp.endpoints) == set(out["endpoints"])


def test_client_ip_affinity_pins_the_client(world):
    r = world["c"].traffic("client", "svc/sticky:80", requests=100, concurrency=4)
    assert r.ok == 100 and len([n for n, k in r.endpoints.items() if k]) == 1, r.endpoints


def test_source_address_from_an_external_host(world):
    c = world["c"]
    kept = c.traffic("external", "svc/np-local:80", requests=20, clientip_probes=5, node=c.workers()[0], via="nodeport")
    ext = json.loads((c.state_dir / "externals" / "external.json").read_text())
    assert kept.ok == 20 and list(kept.clientips.values()) == [[ext["ip"]]]          # ETP Local: kept
    backend_node = world["workers"][0]
    for node in world["workers"]:                                                     # ETP Cluster: masqueraded
        r = c.traffic("external", "svc/np-cluster:80", requests=10, clientip_probes=3, via="nodeport", node=node)
        (seen,) = r.clientips.values()
        assert r.ok == 10 and len(seen) == 1, (node, seen)
        if node == backend_node:      # to a pod on the same node: SNAT to the node's address on cni0
            assert ipaddress.ip_address(seen[0]) in ipaddress.ip_network("10.244.0.0/16") and seen[0].endswith(".1")
        else:                         # forwarded to another node: SNAT to this node's address
            assert seen == [c.doc()["nodes"][node]["ip"]], (node, seen)
    # ETP Local through a node without the endpoint: dropped (timeouts), nothing answers
    empty = c.traffic("external", "svc/np-local:80", requests=3, timeout=0.5, via="nodeport", node=world["workers"][-1])
    assert empty.ok == 0 and empty.errors == {"timeout": 3} and empty.expected == []


def test_a_deleted_backend_shows_as_errors_then_disappears(world):
    c = world["c"]
    victim = c.ready_pods("app=web5")[0]["metadata"]["name"]
    result = {}

    def load():
        result["r"] = c.traffic("client", "svc/web5:80", duration=8, rate=100, timeout=1)
    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(2)
    c.kubectl("delete", "pod", victim, "--wait=false")
    thread.join()
    r = result["r"]
    by_second = [(s.t, s.ok, s.errors, s.endpoints.get(victim, 0)) for s in r.series]
    assert r.endpoints.get(victim), by_second                                     # it answered before
    assert set(r.errors) <= {"refused", "reset", "timeout", "no route"}, r.errors
    tail = [s for s in r.series if s.t >= 6]
    assert tail and all(s.error_count == 0 and not s.endpoints.get(victim) for s in tail), by_second
    assert r.ok >= 700


@pytest.mark.parametrize("words, message", [
    (["--from", "nosuch", "--to", "svc/web3"], "no pod 'nosuch'"),
    (["--from", "client", "--to", "svc/nosuch"], "no service 'nosuch'"),
    (["--from", "client", "--to", "svc/web3:8080"], "port 8080 is not a port of service web3"),
    (["--from", "client", "--to", "svc/web3:80", "--rate", "0"], "--rate must be > 0"),
    (["--from", "client", "--to", "svc/web3:80", "--out", "/proc/nope/r.json"], "cannot write"),
    (["--from", "client", "--to", "172.31.0.1:80"], "not an address of cluster"),
    (["--from", "client", "--to", "8.8.8.8:53", "--proto", "udp"], "not an address of cluster"),
    (["--from", "external/other", "--to", "svc/web3:80"], "not reachable from an external host"),
])
def test_bad_input_is_refused_before_any_packet(world, words, message):
    c = world["c"]
    proc = cli(c, *words, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not Path("/run/netns", f"nex-{c.doc()['id']}-other").exists()      # nothing made for it


def test_kernel_trace_names_the_chains_the_offline_tracer_predicts(world):
    c = world["c"]
    proc = subprocess.run([sys.executable, "-m", "netemu", "trace", "--kernel", "--source", "client", "--to",
                           "svc/web3:80", "--state-dir", str(c.state_dir), "--json"],
                          capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    kernel = [ch for ch in out["kernel"]["chains"] if ch.startswith("nat:KUBE-S")]
    assert [ch.split(":")[1][:9] for ch in kernel] == ["KUBE-SERV", "KUBE-SVC-", "KUBE-SEP-"], out["kernel"]
    predicted = {tuple(ch for ch in o["chains"] if ch.startswith("nat:KUBE-S")) for o in out["predicted"]["outcomes"]}
    assert len(predicted) == 3 and tuple(kernel) in predicted                  # one of the 3 endpoints' paths
    assert out["ok"] and out["mismatches"] == [] and proc.returncode == 0, out["mismatches"]


def test_capture_shows_the_service_translation_on_both_sides(world, tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    from netemu.traffic.capture import Capture, summarize
    c = world["c"]
    doc = c.doc()
    client_node = c.get("pod", "client")["spec"]["nodeName"]
    backend = next(p for p in c.ready_pods("app=web5") if p["spec"]["nodeName"] != client_node)
    svc_ip = c.get("service", "web5")["spec"]["clusterIP"]
    caps = {side: Capture(tmp_path / f"{side}.pcap", doc["nodes"][node]["netns"], bpf="tcp[tcpflags] & tcp-syn != 0 and (tcp port 80 or tcp port 8080)")
            for side, node in (("client", client_node), ("backend", backend["spec"]["nodeName"]))}
    for cap in caps.values():
        cap.start()
    try:
        r = c.traffic("client", "svc/web5:80", connections=30, concurrency=2)
    finally:
        for cap in caps.values():
            cap.stop()
    assert r.ok == 30
    mine = summarize(caps["client"].path, {svc_ip})
    pod_ip = backend["status"]["podIP"]
    to_backend = [(b, a) for b, a in mine.translations if a.dst == f"{pod_ip}:8080"]
    assert to_backend and all(b.dst == f"{svc_ip}:80" and b.syn and a.syn for b, a in to_backend), \
        (mine.render(), caps["client"].stderr.replace("\n", " | "), caps["client"].argv()[4:])
    theirs = summarize(caps["backend"].path, {svc_ip})
    flows = {(f.src, f.dst) for f in theirs.flows}
    missing = [(a.src, a.dst) for _, a in to_backend if (a.src, a.dst) not in flows]
    assert not missing, (missing, mine.render(), theirs.render())                 # the same flow, to the pod IP
    client_ip = world["client_ip"]           # the client's SYNs reach the backend's node already DNATed
    syns = [p for p in rdpcap(str(caps["backend"].path))
            if TCP in p and p[IP].src == client_ip and p[TCP].flags & 0x02 and not p[TCP].flags & 0x10]
    assert syns and {p[IP].dst for p in syns} <= {p["status"]["podIP"] for p in c.ready_pods("app=web5")}


def test_capture_cli_refuses_bad_input(world, tmp_path):
    c = world["c"]
    for words, message in ((["nosuch", "-w", str(tmp_path / "x.pcap")], "no pod 'nosuch'"),
                           (["node/worker", "-w", str(tmp_path / "x.txt")], "must end in .pcap"),
                           (["link", "eth0", "-w", str(tmp_path / "x.pcap")], "not a link of this cluster")):
        proc = subprocess.run([sys.executable, "-m", "netemu", "capture", *words, "--state-dir", str(c.state_dir),
                               "--count", "1"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_probe_shows_the_answer_and_the_translation(world):
    c = world["c"]
    web3 = {p["status"]["podIP"] for p in c.ready_pods("app=web3")}
    svc_ip = c.get("service", "web3")["spec"]["clusterIP"]

    def probe(*words, to="svc/web3:80"):
        proc = subprocess.run([sys.executable, "-m", "netemu", "probe", "--from", "client", "--to", to,
                               "--state-dir", str(c.state_dir), "--json", *words], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    syn = probe("--syn", "--sport", "23456")
    assert syn["answer"]["src"] == svc_ip and syn["answer"]["flags"] == "SA" and syn["answer"]["dport"] == 23456
    (entry,) = syn["conntrack"]
    assert f"dst={svc_ip}" in entry and any(f"src={ip} dst={world['client_ip']} sport=8080" in entry for ip in web3)
    spoofed = probe("--syn", "--src", "10.244.99.7", "--sport", "23457")
    (entry,) = spoofed["conntrack"]
    assert spoofed["answer"] is None and "src=10.244.99.7" in entry    # the answer goes to the spoofed address
    # translated to one backend; its SYN-ACK passes the client's node (and conntrack sees it) only
    # when that backend lives there: a backend elsewhere sends it to a pod range no node routes
    node_of = {p["status"]["podIP"]: p["spec"]["nodeName"] for p in c.ready_pods("app=web3")}
    (chosen,) = [ip for ip in web3 if f"src={ip} dst=10.244.99.7 sport=8080" in entry]
    here = node_of[chosen] == c.get("pod", "client")["spec"]["nodeName"]
    assert ("[UNREPLIED]" not in entry and "SYN_RECV" in entry) if here else "[UNREPLIED]" in entry, entry
    udp = probe("--udp", to="svc/web3:81")
    assert udp["answer"]["src"] == svc_ip and udp["answer"]["data"].startswith("web3-")
    bad = subprocess.run([sys.executable, "-m", "netemu", "probe", "--from", "client", "--to", "svc/web3:80", "--syn",
                          "--src", "192.168.1.1", "--state-dir", str(c.state_dir)], capture_output=True, text=True)
    assert bad.returncode == 2 and "outside the emulated ranges" in bad.stderr
