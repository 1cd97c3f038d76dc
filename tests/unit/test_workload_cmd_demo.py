"""The cluster demo's pure steps: manifests the API accepts, the client node choice, the HTTP
client (against a loopback server), the counts, and the chain excerpt over our own builder's rules.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading

import pytest

from netemu.agent.proxy.iptables import render
from netemu.api.kinds import by_kind
from netemu.api.strategy import prepare_create
from netemu.emulator import demo


def _node(name, ready=True, taints=(), unschedulable=False):
    return {"metadata": {"name": name},
            "spec": {"taints": list(taints), "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pick_client_node_leaves_the_others_for_replicas():
    nodes = [_node("w2"), _node("w1"), _node("w3"), _node("w4", ready=False),
             _node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
             _node("w5", unschedulable=True)]
    assert demo.pick_client_node(nodes) == "w3"
    assert demo.pick_client_node([_node("only")]) == "only"
    assert demo.pick_client_node([_node("x", ready=False)]) is None


def test_manifests_are_valid_objects():
    for obj in (demo.deployment(), demo.service(), demo.client_pod("w3")):
        rt = by_kind(obj["apiVersion"], obj["kind"])
        assert rt is not None
        prepare_create(rt, obj, now="2026-01-01T00:00:00Z")   # raises Invalid on a bad object
    dep = demo.deployment(avoid_client_node=False)
    assert "affinity" not in dep["spec"]["template"]["spec"]
    terms = demo.deployment()["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0] == {"key": demo.CLIENT_LABEL, "operator": "DoesNotExist"}


def test_counts_and_rows():
    counts, failed = demo.count_answers(["web-a", "web-b", None, "web-a", ""])
    assert counts == {"web-a": 2, "web-b": 1} and failed == 2
    pods = [{"metadata": {"name": n}, "spec": {"nodeName": f"node-{n}"}, "status": {"podIP": ip}}
            for n, ip in (("web-b", "10.244.2.5"), ("web-a", "10.244.1.4"), ("web-c", "10.244.1.9"))]
    rows = demo.distribution_rows(counts, pods)
    assert rows[0] == ("web-a", "node-web-a", "10.244.1.4", 2, "66.7%")
    assert rows[2] == ("web-c", "node-web-c", "10.244.1.9", 0, "0.0%")
    assert demo.distribution_rows({"stranger": 1}, []) == [("stranger", "?", "?", 1, "100.0%")]


def test_ready_endpoints_and_pod_ready():
    slices = [{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                             {"addresses": ["10.0.0.3"]}]}]
    assert demo.ready_endpoints(slices) == {"10.0.0.1", "10.0.0.3"}
    running = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert demo.pod_ready(running)
    assert not demo.pod_ready({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}})


def _slice(ips):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "hostnames-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": demo.APP}},
            "addressType": "IPv4", "ports": [{"name": demo.PORT_NAME, "port": demo.POD_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def test_chain_excerpt_over_our_builders_rules():
    svc = demo.service()
    svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"] = "10.96.0.50", ["10.96.0.50"]
    other = demo.service(name="other")
    other["spec"]["clusterIP"], other["spec"]["clusterIPs"] = "10.96.0.51", ["10.96.0.51"]
    other["spec"]["selector"] = {"app": "other"}
    slices = [_slice(["10.244.1.4", "10.244.2.5", "10.244.3.6"])]
    other_slice = _slice(["10.244.1.7"])
    other_slice["metadata"].update(name="other-x", labels={"kubernetes.io/service-name": "other"})
    text = render([svc, other], slices + [other_slice]).text
    chain = demo.service_chain("default", demo.APP)
    excerpt = demo.svc_chain_excerpt(text, chain)
    assert demo.endpoint_jumps(excerpt, chain) == 3
    assert any(line.startswith("-A KUBE-SERVICES") and "10.96.0.50" in line for line in excerpt)
    assert sum(1 for line in excerpt if line.startswith(":KUBE-SEP-")) == 3
    assert sum(1 for line in excerpt if "DNAT" in line) == 3
    assert not any("10.96.0.51" in line or "10.244.1.7" in line for line in excerpt)
    assert any("--probability 0.3333333333" in line for line in excerpt)
    assert demo.svc_chain_excerpt(text, demo.service_chain("default", "absent")) == []


def test_parse_client_output():
    assert demo.parse_client_output('noise\n["a", null]\n') == ["a", None]
    with pytest.raises(ValueError, match="no result"):
        demo.parse_client_output("Traceback ...")
    with pytest.raises(ValueError, match="not a list"):
        demo.parse_client_output('{"a": 1}')


def test_http_client_counts_answers_of_a_loopback_server():
    """The exact client source the demo runs in the pod, against a /hostname server on 127.0.0.1."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"pod-x" if self.path == "/hostname" else b"nope"
            self.send_response(200 if self.path == "/hostname" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = str(server.server_address[1])
        out = subprocess.run([sys.executable, "-c", demo.HTTP_CLIENT_SOURCE, "127.0.0.1", port,
                              "/hostname", "5", "3"], capture_output=True, text=True, timeout=60)
        assert demo.parse_client_output(out.stdout) == ["pod-x"] * 5
        out = subprocess.run([sys.executable, "-c", demo.HTTP_CLIENT_SOURCE, "127.0.0.1", port,
                              "/other", "2", "3"], capture_output=True, text=True, timeout=60)
        assert demo.parse_client_output(out.stdout) == [None, None]
    finally:
        server.shutdown()
        server.server_close()
    # nothing listens there any more: refused connections are failures, not exceptions
    out = subprocess.run([sys.executable, "-c", demo.HTTP_CLIENT_SOURCE, "127.0.0.1", port,
                          "/hostname", "2", "1"], capture_output=True, text=True, timeout=60)
    assert demo.parse_client_output(out.stdout) == [None, None]


def test_demo_command_refuses_bad_counts(capsys, monkeypatch):
    from netemu.cli.main import main
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert main(["demo", "--nodes", "0"]) == 2
    assert "--nodes" in capsys.readouterr().err
    assert main(["demo", "--requests", "0"]) == 2
