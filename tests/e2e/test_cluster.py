"""The issue's "Done when", end to end: one 3-node cluster on Mininet for the whole module.

Deployment + Service applied with real kubectl; 300 requests from a client pod to the ClusterIP
reach every replica and /clientip shows the client pod's own IP (no masquerade inside the
cluster, as upstream); pod to pod across nodes; a NodePort from another node; two containers of
one pod over localhost; a failing readiness probe takes a pod out of the Service and back in; a
node's link cut makes it NotReady, its pods move and traffic recovers; bad input is refused with a
clear message. The node-failure test runs last (it changes the cluster); `netemu down` must then
leave nothing of the cluster on the machine.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import _cluster as c

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl]

# Short control-plane timings so a dead node is noticed within seconds (upstream flags).
FAST = ("--apiserver-arg=--node-monitor-grace-period=6s", "--apiserver-arg=--node-monitor-period=1s",
        "--agent-arg=--heartbeat-interval=1")
READY_FLAG_DIR = Path("/run/netemu-e2e-%d" % os.getpid())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with c.running(tmp_path_factory.mktemp("e2e-cluster"), 3, FAST) as cl:
            yield cl
    finally:
        shutil.rmtree(READY_FLAG_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def web(cluster):
    """hostnames: 3 replicas kept off the client node, its ClusterIP and NodePort Services, the client."""
    workers = cluster.workers()
    assert len(workers) == 3
    client_node = workers[-1]
    cluster.kubectl("label", "node", client_node, "e2e-client=true")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "e2e-client", "operator": "DoesNotExist"}]}]}}}
    tolerations = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 2} for k in ("unreachable", "not-ready")]
    out = cluster.kubectl("apply", "-f", "-", input=c.manifest(
        c.deployment("hostnames", 3, affinity=affinity, tolerations=tolerations),
        c.service("hostnames", {"app": "hostnames"}),
        c.service("hostnames-np", {"app": "hostnames"}, "NodePort"),
        c.pause_pod("client", client_node))).stdout
    assert "deployment.apps/hostnames created" in out and "service/hostnames created" in out
    pods = c.wait_until("3 ready replicas", lambda: [p for p in cluster.pods("app=hostnames") if c.ready(p)]
                        if len([p for p in cluster.pods("app=hostnames") if c.ready(p)]) == 3 else None, 180)
    client = c.wait_until("the client pod", lambda: (lambda p: p if c.ready(p) else None)(
        cluster.get("pod", "client")), 120)
    svc = cluster.get("service", "hostnames")
    return {"pods": pods, "client": client, "ip": svc["spec"]["clusterIP"], "client_node": client_node}


def _answers_from_all(cluster, web, names: set[str], count: int = 300) -> collections.Counter:
    def probe():
        answers = c.from_pod(web["client"], web["ip"], 80, "/hostname", count)
        got = collections.Counter(answers)
        return got if None not in got and set(got) == names else None
    return c.wait_until(f"{count} answers from exactly {sorted(names)}", probe, 60, 1)


def test_three_nodes_ready(cluster):
    nodes = cluster.get("nodes")["items"]
    assert len(nodes) == 3
    for node in nodes:
        assert c.node_ready(node) == "True"
        assert node["spec"].get("podCIDR", "").startswith("10.244.")
        types = {a["type"] for a in node["status"]["addresses"]}
        assert {"InternalIP", "Hostname"} <= types


def _as(conf: str, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", conf, "--request-timeout=30s", *words],
                          capture_output=True, text=True, timeout=60)


def test_node_and_kube_proxy_credentials_are_least_privilege(cluster, web):
    """Each node's kubelet is system:node:NAME (the Node authorizer + NodeRestriction) and its
    kube-proxy system:kube-proxy, from the kubeconfigs `up` wrote for them (ported from branch
    api-full, aab9a72/bed5efe, onto the split node processes): a node may write its own Node
    only, no pod bound elsewhere, no Service; kube-proxy only reads."""
    node, other = web["client_node"], next(w for w in cluster.workers() if w != web["client_node"])
    kubelet_conf = str(cluster.state_dir / "nodes" / node / "kubelet.conf")
    proxy_conf = str(cluster.state_dir / "kube-proxy.conf")
    assert _as(kubelet_conf, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == \
        f"system:node:{node}"
    assert _as(proxy_conf, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == \
        "system:kube-proxy"
    assert _as(kubelet_conf, "label", "node", node, "e2e-own=yes").returncode == 0
    refused = _as(kubelet_conf, "label", "node", other, "e2e-own=yes")
    assert f'node "{node}" is not allowed to modify node "{other}"' in refused.stderr
    elsewhere = web["pods"][0]["metadata"]["name"]          # the replicas are kept off this node
    refused = _as(kubelet_conf, "delete", "pod", elsewhere, "--wait=false")
    assert f'node "{node}" can only delete pods with spec.nodeName set to itself' in refused.stderr
    assert cluster.get("pod", elsewhere)["metadata"].get("deletionTimestamp") is None
    refused = _as(kubelet_conf, "label", "svc", "kubernetes", "x=y")
    assert f'User "system:node:{node}" cannot patch resource "services"' in refused.stderr
    assert _as(proxy_conf, "get", "endpointslices", "-A").returncode == 0
    refused = _as(proxy_conf, "delete", "svc", "kubernetes")
    assert 'User "system:kube-proxy" cannot delete resource "services"' in refused.stderr
    refused = _as(proxy_conf, "label", "node", node, "x=y")
    assert 'User "system:kube-proxy" cannot patch resource "nodes"' in refused.stderr
    assert _as(proxy_conf, "get", "secrets", "-A").returncode == 1
    # the kubelet registered its node with its kube-proxy's mode (kube-proxy itself may not)
    assert cluster.get("node", node)["metadata"]["annotations"].get("kube-proxy.netemu.io/mode") == "iptables"


IN_CLUSTER = """
import os
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
print("HOST", os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"], flush=True)
try:
    open("/var/run/secrets/kubernetes.io/serviceaccount/token", "a").close()
    print("WRITABLE", flush=True)
except OSError:
    print("READ-ONLY", flush=True)
try:
    print("LISTED", len(client.CoreV1Api().list_namespaced_pod(ns).items), flush=True)
except ApiException as exc:
    print("REFUSED", exc.status, flush=True)
"""


def test_python_client_in_a_pod_acts_as_its_service_account(cluster, web):
    """load_incluster_config() in a pod's process: the kubelet's projected token, CA and
    namespace at /var/run/secrets/kubernetes.io/serviceaccount (read-only, in the container's
    own mount namespace) and KUBERNETES_SERVICE_HOST/PORT, reaching the API server at 10.96.0.1
    through kube-proxy; allowed only once its ServiceAccount is bound (ported from api-full b5477fd)."""
    import sys
    cluster.kubectl("create", "serviceaccount", "reader")
    cluster.kubectl("create", "rolebinding", "reader-view", "--clusterrole=view", "--serviceaccount=default:reader")
    for name, sa in (("incluster-allowed", "reader"), ("incluster-refused", "default")):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "serviceAccountName": sa, "restartPolicy": "Never",
            "containers": [{"name": "py", "image": "python:3.11", "command": [sys.executable, "-c", IN_CLUSTER]}]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    for name, want in (("incluster-allowed", "LISTED"), ("incluster-refused", "REFUSED 403")):
        c.wait_until(f"pod {name} finished",
                     lambda n=name: cluster.get("pod", n)["status"].get("phase") in ("Succeeded", "Failed"), 90)
        logs = cluster.kubectl("logs", name).stdout
        assert want in logs and "HOST 10.96.0.1 443" in logs and "READ-ONLY" in logs, logs
    cluster.kubectl("delete", "pod", "incluster-allowed", "incluster-refused", "--wait=false")


def test_kubectl_exec_through_the_api_server(cluster, web):
    """kubectl 1.32's exec: a WebSocket (v5.channel.k8s.io) to the API server, which joins it to
    the kubelet of the pod's node: output, stdin, the exit code, a terminal (-t, under script(1)
    for a pty), and the refusals kubectl shows (no such container, RBAC without pods/exec)."""
    def kubectl(*words, input=None):
        return subprocess.run(["kubectl", "--kubeconfig", cluster.kubeconfig, "--request-timeout=30s", *words],
                              capture_output=True, text=True, timeout=60, input=input)
    assert kubectl("exec", "client", "--", "hostname").stdout == "client\n"
    assert kubectl("exec", "client", "--", "sh", "-c", "echo $KUBERNETES_SERVICE_HOST").stdout == "10.96.0.1\n"
    assert kubectl("exec", "-i", "client", "--", "cat", input="hello\nworld\n").stdout == "hello\nworld\n"
    failed = kubectl("exec", "client", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.returncode, failed.stdout) == (3, "out\n") and "err\n" in failed.stderr
    assert "command terminated with exit code 3" in failed.stderr
    tty = subprocess.run(["script", "-qec", f"stty cols 100 rows 30; kubectl --kubeconfig {cluster.kubeconfig} "
                          "exec -it client -- sh -c 'tty; stty size'", "/dev/null"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "/dev/pts/" in tty.stdout and "30 100" in tty.stdout, tty
    copied = Path(cluster.state_dir) / "copied-resolv.conf"      # kubectl cp: tar through exec
    assert kubectl("cp", "client:/etc/resolv.conf", str(copied)).returncode == 0
    assert "nameserver 10.96.0.10" in copied.read_text()                # the pod's own, not the host's
    wrong = kubectl("exec", "client", "-c", "nosuch", "--", "true")
    assert "container nosuch is not valid for pod client" in wrong.stderr
    cluster.kubectl("create", "serviceaccount", "exec-viewer")
    cluster.kubectl("create", "rolebinding", "exec-viewer", "--clusterrole=view", "--serviceaccount=default:exec-viewer")
    refused = kubectl("exec", "--as=system:serviceaccount:default:exec-viewer", "client", "--", "true")
    assert refused.returncode == 1 and 'cannot create resource "pods/exec"' in refused.stderr


def _port_forward(cluster, *words: str) -> tuple[subprocess.Popen, int]:
    """``kubectl port-forward ... :PORT`` (a free local port kubectl picks) and that port."""
    import re
    proc = subprocess.Popen(["kubectl", "--kubeconfig", cluster.kubeconfig, "port-forward", *words],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    found = re.search(r"127\.0\.0\.1:(\d+) ->", line)
    if not found:
        proc.kill()
        raise AssertionError(f"kubectl port-forward said {line!r}: {proc.stderr.read()}")
    return proc, int(found.group(1))


def test_kubectl_port_forward_through_the_api_server(cluster, web):
    """kubectl 1.32's port-forward: SPDY/3.1 over a WebSocket to the API server, one pair of
    streams per connection, joined to localhost:PORT inside the pod by its kubelet; kubectl
    picks the pod and target port of svc/NAME itself. A closed port is reported as upstream's."""
    import urllib.request
    names = {p["metadata"]["name"] for p in web["pods"]}
    proc, port = _port_forward(cluster, "svc/hostnames", ":80")
    try:
        answers = {urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10).read().decode()
                   for _ in range(5)}
        assert len(answers) == 1 and answers <= names, answers        # one pod, every connection
    finally:
        proc.terminate()
        proc.wait(10)
    proc, port = _port_forward(cluster, "pod/client", ":9")
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        assert proc.wait(20) != 0
        assert "dial tcp4 127.0.0.1:9: connect: connection refused" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(10)


class Terminal:
    """A command on a pseudo-terminal of its own (kubectl -it wants its stdin to be a terminal),
    read until some text shows; killed on ``close`` if still running."""

    def __init__(self, argv: list[str], cols: int = 100, rows: int = 30):
        import fcntl
        import struct
        import termios
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.out = b""

    def until(self, text: bytes, timeout: float = 60) -> bytes:
        import select
        import time
        deadline = time.monotonic() + timeout
        while text not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no {text!r} in {timeout} s; the terminal showed {self.out!r}")
            try:
                data = os.read(self.master, 4096)
            except OSError:                       # EIO: the command and its terminal are gone
                data = b""
            if not data:
                raise AssertionError(f"the command ended before {text!r}; the terminal showed {self.out!r}")
            self.out += data
        return self.out

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 60) -> int:
        import select
        try:
            while select.select([self.master], [], [], 1)[0]:         # drain, so kubectl never blocks writing
                self.out += os.read(self.master, 4096)
        except OSError:
            pass
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def test_kubectl_run_it_rm_attaches_to_a_shell_and_deletes_the_pod(cluster):
    """``kubectl run -it --rm --image=busybox -- sh``: kubectl makes a pod with stdin, stdinOnce
    and tty, waits for it to run and attaches (pods/attach, WebSocket v5) to the shell the
    runtime holds on a terminal; typed commands run, ``exit`` ends the session, and kubectl
    deletes the pod. The output line is made by the shell (6*7), so the terminal's echo of the
    typed line cannot pass for it."""
    import uuid
    token = uuid.uuid4().hex[:8]
    name = f"bb-{token}"
    term = Terminal(["kubectl", "--kubeconfig", cluster.kubeconfig, "run", "-it", "--rm", name,
                     "--image=busybox", "--restart=Never", "--", "sh"])
    try:
        term.until(b"If you don't see a command prompt, try pressing enter.", 120)
        term.type(f"stty size; echo hello-$((6*7))-{token}; exit\r")
        out = term.until(f"hello-42-{token}\r\n".encode())
        assert term.wait() == 0, term.out
        assert b"30 100" in out                                         # kubectl's terminal size
        assert f'pod "{name}" deleted'.encode() in term.out
    finally:
        term.close()
    c.wait_until(f"pod {name} gone", lambda: "NotFound" in cluster.kubectl("get", "pod", name, check=False).stderr, 60)


def test_kubectl_attach_to_a_running_shell_and_to_an_output_stream(cluster):
    """``kubectl attach -it`` to a pod started with stdin and tty (its shell runs, waiting): typed
    commands reach it and its output comes back; ``kubectl attach`` without -i to a container
    without stdin shows its output as it comes; ``kubectl logs`` still has what the shell printed."""
    shell = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "attach-sh"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "sh", "image": "busybox", "command": ["sh"],
                                                  "stdin": True, "tty": True}]}}
    ticker = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "attach-ticker"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "t", "image": "busybox", "command": [
            "sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.3; done"]}]}}
    cluster.kubectl("apply", "-f", "-", input=c.manifest(shell, ticker))
    for pod in ("attach-sh", "attach-ticker"):
        c.wait_until(f"pod {pod} running", lambda p=pod: cluster.get("pod", p)["status"].get("phase") == "Running", 90)
    term = Terminal(["kubectl", "--kubeconfig", cluster.kubeconfig, "attach", "-it", "attach-sh"])
    try:
        term.until(b"If you don't see a command prompt, try pressing enter.")
        term.type("echo attached-$((2*3))\r")
        term.until(b"attached-6\r\n")
        term.type("exit\r")
        assert term.wait() == 0, term.out
    finally:
        term.close()
    assert "attached-6" in cluster.kubectl("logs", "attach-sh").stdout
    follow = subprocess.Popen(["kubectl", "--kubeconfig", cluster.kubeconfig, "attach", "attach-ticker"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import threading
    stop = threading.Timer(60, follow.kill)              # no output in time: readline then returns ''
    stop.start()
    try:
        ticks = [follow.stdout.readline() for _ in range(3)]
        assert all(t.startswith("tick-") for t in ticks), (ticks, follow.stderr.read() if follow.poll() else "")
        numbers = [int(t.strip().split("-")[1]) for t in ticks]
        assert numbers == list(range(numbers[0], numbers[0] + 3)) and numbers[0] > 0, ticks   # from now on
    finally:
        stop.cancel()
        follow.kill()
        follow.wait(10)
    cluster.kubectl("delete", "pod", "attach-sh", "attach-ticker", "--wait=false")


def test_clusterip_reaches_every_replica_and_sees_the_pod_ip(cluster, web):
    names = {p["metadata"]["name"] for p in web["pods"]}
    counts = _answers_from_all(cluster, web, names)
    assert sum(counts.values()) == 300
    assert all(n >= 30 for n in counts.values()), counts        # 1/3 each, far from starved
    client_ip = web["client"]["status"]["podIP"]
    for answer in c.from_pod(web["client"], web["ip"], 80, "/clientip", 5):
        assert answer and answer.rsplit(":", 1)[0] == client_ip   # no masquerade inside the cluster
    assert {p["spec"]["nodeName"] for p in web["pods"]}.isdisjoint({web["client_node"]})


def test_pod_to_pod_across_nodes(cluster, web):
    target = web["pods"][0]
    assert target["spec"]["nodeName"] != web["client"]["spec"]["nodeName"]
    ip = target["status"]["podIP"]
    assert c.from_pod(web["client"], ip, 8080, "/hostname", 3) == [target["metadata"]["name"]] * 3
    seen = c.from_pod(web["client"], ip, 8080, "/clientip")[0]
    assert seen.rsplit(":", 1)[0] == web["client"]["status"]["podIP"]


def test_nodeport_from_another_node(cluster, web):
    port = cluster.get("service", "hostnames-np")["spec"]["ports"][0]["nodePort"]
    replica_node = web["pods"][0]["spec"]["nodeName"]
    names = {p["metadata"]["name"] for p in web["pods"]}
    answers = c.http(cluster.node_netns(web["client_node"]), cluster.node_ip(replica_node), port,
                     "/hostname", 30)
    assert None not in answers and set(answers) <= names
    # masqueraded as upstream does for NodePort traffic: the source is the receiving node's
    # address on the way out (its node IP, or its cni0 gateway for a local endpoint), never the caller
    import ipaddress
    cidr = ipaddress.ip_network(cluster.get("node", replica_node)["spec"]["podCIDR"])
    allowed = {cluster.node_ip(replica_node), str(cidr.network_address + 1)}
    sources = c.http(cluster.node_netns(web["client_node"]), cluster.node_ip(replica_node), port,
                     "/clientip", 20)
    assert {s.rsplit(":", 1)[0] for s in sources if s} <= allowed and None not in sources, sources


def test_two_containers_of_a_pod_talk_over_localhost(cluster):
    fetch = ("import time, urllib.request\n"
             "while True:\n"
             "    try:\n"
             "        print('got', urllib.request.urlopen('http://127.0.0.1:8080/hostname', timeout=2).read().decode(), flush=True)\n"
             "    except OSError as e:\n"
             "        print('error', e, flush=True)\n"
             "    time.sleep(1)\n")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "duo"},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [
               {"name": "server", "image": c.AGNHOST, "args": ["netexec", "--http-port=8080"]},
               {"name": "fetcher", "image": "docker.io/library/python:3.11-slim",
                "command": ["python3", "-u", "-c", fetch]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    c.wait_until("duo running", lambda: c.ready(cluster.get("pod", "duo")), 120)
    log = c.wait_until("the fetcher's answer", lambda: (lambda out: out if "got duo" in out else None)(
        c.netemu("logs", "duo", "-c", "fetcher", "--kubeconfig", cluster.kubeconfig, check=False).stdout), 60, 1)
    assert "got duo" in log
    kubectl_log = cluster.kubectl("logs", "duo", "-c", "fetcher").stdout
    assert "got duo" in kubectl_log
    # -f follows: lines written after the call started arrive too (the fetcher prints every second)
    follow = subprocess.Popen([*c.netemu_argv("logs", "duo", "-c", "fetcher", "-f", "--tail", "1",
                                              "--kubeconfig", cluster.kubeconfig)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, _ = follow.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        follow.terminate()
        out, _ = follow.communicate(timeout=10)
    assert out.count("got duo") >= 2, out


def test_kubectl_top_nodes_and_pods(cluster):
    """kubectl top through metrics.k8s.io: every node's process tree and a process container's
    CPU and memory as the kubelets measure them (a pod burning ~half a core shows it)."""
    burn = "import time\nwhile True:\n    t = time.time()\n    while time.time() - t < 0.05: pass\n    time.sleep(0.05)\n"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "burner"},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [
               {"name": "burn", "image": "python:3.12", "command": ["python3", "-c", burn]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        c.wait_until("burner running", lambda: c.ready(cluster.get("pod", "burner")), 120)
        shown = json.loads(cluster.kubectl("get", "pod", "burner", "-o", "json", "--show-managed-fields").stdout)
        owners = {(e["manager"], e["operation"], e.get("subresource", "")) for e in shown["metadata"]["managedFields"]}
        assert {("kubectl-client-side-apply", "Update", ""), ("kubelet", "Update", "status")} <= owners, owners
        lines = cluster.kubectl("top", "nodes").stdout.splitlines()
        assert lines[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], lines
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert set(rows) == {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
        for name, row in rows.items():
            assert row[1].endswith("m") and row[3].endswith("Mi"), row
            assert int(row[3][:-2]) >= 20, f"{name}: a node's processes hold more than {row[3]}"
        out = cluster.kubectl("top", "pod", "burner", "--containers").stdout.splitlines()
        assert out[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], out
        _, name, cpu, memory = out[1].split()
        assert name == "burn" and int(cpu[:-1]) >= 100 and int(memory[:-2]) >= 1, out
        everywhere = cluster.kubectl("top", "pods", "-A").stdout
        assert "burner" in everywhere and "NAMESPACE" in everywhere.splitlines()[0]
        refused = cluster.kubectl("top", "pod", "no-such-pod", check=False)
        assert refused.returncode != 0 and "not found" in refused.stderr
        registered = cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io").stdout.splitlines()
        assert registered[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
        assert registered[1].split()[:3] == ["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "True"]
        raw = json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)
        assert raw["kind"] == "NodeMetricsList" and all(i["usage"]["cpu"].endswith("n") for i in raw["items"])
    finally:
        cluster.kubectl("delete", "pod", "burner", "--wait=false", check=False)


def test_failing_readiness_takes_a_pod_out_and_back(cluster, web):
    READY_FLAG_DIR.mkdir(exist_ok=True)
    pods = []
    for name in ("rp-a", "rp-b"):
        (READY_FLAG_DIR / name).touch()
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "rp"}},
                     "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                         "name": "agnhost", "image": c.AGNHOST, "args": ["netexec", "--http-port=8080"],
                         "readinessProbe": {"exec": {"command": ["test", "-f", str(READY_FLAG_DIR / name)]},
                                            "periodSeconds": 1, "failureThreshold": 1}}]}})
    cluster.kubectl("apply", "-f", "-", input=c.manifest(*pods, c.service("rp", {"app": "rp"})))
    c.wait_until("rp pods ready", lambda: len([p for p in cluster.pods("app=rp") if c.ready(p)]) == 2, 120)
    ip = cluster.get("service", "rp")["spec"]["clusterIP"]
    web_rp = {**web, "ip": ip}
    _answers_from_all(cluster, web_rp, {"rp-a", "rp-b"}, 60)

    (READY_FLAG_DIR / "rp-b").unlink()
    c.wait_until("rp-b not ready", lambda: not c.ready(cluster.get("pod", "rp-b")), 60)
    _answers_from_all(cluster, web_rp, {"rp-a"}, 100)              # no request reaches rp-b

    (READY_FLAG_DIR / "rp-b").touch()
    c.wait_until("rp-b ready again", lambda: c.ready(cluster.get("pod", "rp-b")), 60)
    _answers_from_all(cluster, web_rp, {"rp-a", "rp-b"}, 60)


def test_unknown_image_waits_with_a_clear_reason(cluster):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mystery"},
           "spec": {"containers": [{"name": "m", "image": "example.com/mystery:1"}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def waiting():
        statuses = (cluster.get("pod", "mystery").get("status") or {}).get("containerStatuses") or []
        return statuses and (statuses[0].get("state") or {}).get("waiting")
    state = c.wait_until("a waiting reason", waiting, 60)
    assert state.get("reason") and "agnhost" in state.get("message", "")
    cluster.kubectl("delete", "pod", "mystery", "--wait=false")


def test_second_up_is_refused_and_leaves_the_first_alone(cluster):
    again = c.netemu("up", "--nodes", "1", "--state-dir", str(cluster.state_dir), "--node-network",
                     c.node_network(7), check=False, timeout=120)
    assert again.returncode == 2 and "in use by a running cluster" in again.stderr
    other = cluster.state_dir.parent / "second-state"
    same_net = c.netemu("up", "--nodes", "1", "--state-dir", str(other), "--node-network", cluster.network,
                        check=False, timeout=120)
    assert same_net.returncode != 0 and cluster.network in same_net.stderr + same_net.stdout
    assert "Traceback" not in same_net.stderr
    assert all(c.node_ready(n) == "True" for n in cluster.get("nodes")["items"])


def test_kubectl_debug_adds_an_ephemeral_container(cluster, web):
    """kubectl 1.32's debug (non-interactive): a strategic-merge PATCH of pods/NAME/
    ephemeralcontainers; the kubelet runs it once in the pod's network namespace (localhost is the
    pod's own server), reports it in ephemeralContainerStatuses, and its log is the pod's; the
    pod's own containers go on. A second debugger with the same name is refused as upstream."""
    target = web["pods"][0]["metadata"]["name"]
    script = "wget -qO- http://localhost:8080/hostname; echo; exit 0"
    cluster.kubectl("debug", target, "--image=busybox", "--container=dbg", "--profile=general", "--",
                    "sh", "-c", script)

    def finished():
        pod = cluster.get("pod", target)
        statuses = pod["status"].get("ephemeralContainerStatuses") or []
        return statuses and "terminated" in statuses[0]["state"] and pod
    pod = c.wait_until("the debugger finished", finished, 60)
    assert pod["status"]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert cluster.kubectl("logs", target, "-c", "dbg").stdout == f"{target}\n"
    assert pod["status"]["phase"] == "Running" and all(s["restartCount"] == 0 and "running" in s["state"]
                                                        for s in pod["status"]["containerStatuses"])
    again = subprocess.run(["kubectl", "--kubeconfig", cluster.kubeconfig, "debug", target, "--image=busybox",
                            "--container=dbg", "--profile=general", "--", "true"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and 'existing ephemeral containers "dbg" may not be changed' in again.stderr, \
        again.stderr
    # kubectl debug -it: the ephemeral container has stdin and a terminal; kubectl attaches to it
    term = Terminal(["kubectl", "--kubeconfig", cluster.kubeconfig, "debug", "-it", target, "--image=busybox",
                     "--container=dbg-it", "--profile=general", "--", "sh"])
    try:
        term.until(b"If you don't see a command prompt, try pressing enter.", 120)
        term.type("echo debug-$((6*7)); wget -qO- http://localhost:8080/hostname; echo; exit\r")
        term.until(f"debug-42\r\n{target}\r\n".encode())
        assert term.wait() == 0, term.out
    finally:
        term.close()


def test_exec_in_a_pod_and_a_node(cluster, web):
    client = web["client"]
    out = c.netemu("exec", "client", "--kubeconfig", cluster.kubeconfig, "--", "ip", "-o", "-4", "addr",
                   "show", "eth0").stdout
    assert client["status"]["podIP"] in out
    node = web["client_node"]
    out = c.netemu("exec", "--node", node, "--state-dir", str(cluster.state_dir), "--", "ip", "-o", "-4",
                   "addr").stdout
    assert cluster.node_ip(node) in out


def test_zz_node_link_cut_moves_pods_and_traffic_recovers(cluster, web):
    """Runs last: one replica node loses its link, goes NotReady, its pods come back elsewhere."""
    victim = web["pods"][0]["spec"]["nodeName"]
    moved = {p["metadata"]["name"] for p in web["pods"] if p["spec"]["nodeName"] == victim}
    from netemu.emulator.supervisor import control_request
    answer = control_request(str(cluster.state_dir), {"op": "link", "node": victim, "status": "down"})
    assert answer.get("ok"), answer
    c.wait_until(f"{victim} NotReady", lambda: c.node_ready(cluster.get("node", victim)) != "True", 60)

    def replaced():
        pods = [p for p in cluster.pods("app=hostnames") if c.ready(p) and p["spec"]["nodeName"] != victim]
        return pods if len(pods) == 3 and not moved & {p["metadata"]["name"] for p in pods} else None
    pods = c.wait_until("3 ready replicas off the dead node", replaced, 120)
    _answers_from_all(cluster, web, {p["metadata"]["name"] for p in pods}, 100)
