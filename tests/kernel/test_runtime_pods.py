"""Pod runtime on a real kernel: a node namespace (made here) with cni0 and three pods.

Everything lives in namespaces this test creates: the node netns ``ntr<pid>…`` and the pods'
``nep-<uid>`` namespaces; all of them are deleted in ``finally`` (and checked gone).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from netemu.agent.runtime import ContainerStartError, NodeRuntime, exec_in, http_get, pod_netns, tcp_connect
from netemu.agent.runtime.nsenter import socket_in_netns

pytestmark = pytest.mark.root

_COUNTER = itertools.count()
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def _netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _veths_gone(node_ns: str, *veths: str) -> None:
    """The kernel removes a deleted namespace's veth asynchronously: wait (bounded) for it.
    A veth that stays means something still holds the pod's namespace (a leaked socket)."""
    for _ in range(100):
        links = subprocess.run(["ip", "-n", node_ns, "-o", "link"], capture_output=True, text=True).stdout
        if not any(v in links for v in veths):
            return
        time.sleep(0.05)
    raise AssertionError(f"veths still on the node after 5 s: {links}")


def _pod(name: str, *containers: dict, namespace: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
            "spec": {"nodeName": "n1", "containers": list(containers)}}


@pytest.fixture
def node(tmp_path):
    """A node namespace and a NodeRuntime acting on it; removes every pod netns it made."""
    name = f"ntr{os.getpid()}{next(_COUNTER)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    rt = NodeRuntime(str(tmp_path), "10.244.7.0/24", node_netns=name)
    try:
        yield rt
    finally:
        for uid in list(rt.sandboxes.known()):
            subprocess.run(["ip", "netns", "del", pod_netns(uid)], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


async def _udp(netns: str, ip: str, port: int, payload: bytes) -> str:
    loop = asyncio.get_running_loop()
    sock = socket_in_netns(netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("0.0.0.0", 0))
        await loop.sock_sendto(sock, payload, (ip, port))
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), 3)
        return data.decode()
    finally:
        sock.close()


def test_builtin_pods_talk_over_the_bridge(node):
    async def scenario():
        await node.setup_node()
        a = _pod("pod-a", {"name": "web", "image": AGNHOST, "args": ["netexec", "--http-port=8080", "--udp-port=8081"]})
        b = _pod("pod-b", {"name": "nginx", "image": "nginx:1.25"},
                 {"name": "sh", "image": AGNHOST, "args": ["serve-hostname", "--udp", "--http=false", "--port=9376"]})
        sa, sb = await node.create_sandbox(a), await node.create_sandbox(b)
        assert sa.ip != sb.ip and sa.ip.startswith("10.244.7.") and sa.netns == pod_netns(a["metadata"]["uid"])
        detail = subprocess.run(["ip", "-n", node.node_netns, "-d", "link", "show", sa.veth],
                                capture_output=True, text=True).stdout
        assert "master cni0" in detail and "hairpin on" in detail
        web = await node.start_container(sa, a, a["spec"]["containers"][0])
        ngx = await node.start_container(sb, b, b["spec"]["containers"][0])
        shn = await node.start_container(sb, b, b["spec"]["containers"][1])

        # pod b -> pod a across cni0: agnhost netexec's answers
        r = await http_get(sa.ip, 8080, "/hostname", netns=sb.netns)
        assert (r.ok, r.body) == (True, b"pod-a")
        r = await http_get(sa.ip, 8080, "/clientip", netns=sb.netns)
        ip, port = r.body.decode().rsplit(":", 1)
        assert ip == sb.ip and int(port) > 0
        r = await http_get(sa.ip, 8080, "/echo?msg=hi%20there", netns=sb.netns)
        assert r.body == b"hi there"
        assert (await http_get(sa.ip, 8080, "/echo?msg=x&code=503", netns=sb.netns)).status == 503
        assert (await http_get(sa.ip, 8080, "/healthz", netns=sb.netns)).status == 200
        assert await _udp(sb.netns, sa.ip, 8081, b"hostname") == "pod-a"
        assert await _udp(sb.netns, sa.ip, 8081, b"echo Hello") == "hello"  # upstream lower-cases
        assert (await _udp(sb.netns, sa.ip, 8081, b"clientip")).startswith(sb.ip + ":")

        # pod a -> pod b: nginx answers the pod name, serve-hostname over UDP
        r = await http_get(sb.ip, 80, "/anything", netns=sa.netns)
        assert r.body == b"pod-b\n"
        assert await _udp(sa.netns, sb.ip, 9376, b"x") == "pod-b"

        # probes from the node namespace (as the kubelet does) reach the pod IP
        assert (await tcp_connect(sa.ip, 8080, netns=node.node_netns)).ok
        closed = await tcp_connect(sa.ip, 9999, netns=node.node_netns)
        assert not closed.ok and "refused" in closed.message

        # two containers of one pod share localhost (a process reaches the built-in one)
        code = ("import urllib.request;print(urllib.request.urlopen("
                "'http://127.0.0.1:8080/hostname',timeout=3).read().decode())")
        res = await exec_in(sa.netns, [sys.executable, "-c", code], timeout=10)
        assert (res.exit_code, res.stdout.strip()) == (0, b"pod-a")

        # /dial: pod a's netexec makes the requests from pod a (upstream e2e's favourite)
        r = await http_get(sa.ip, 8080, f"/dial?request=hostname&protocol=http&host={sb.ip}&port=80&tries=2",
                           netns=sb.netns, timeout=10)
        assert json.loads(r.body) == {"responses": ["pod-b\n", "pod-b\n"]}
        r = await http_get(sa.ip, 8080, f"/dial?request=hostname&protocol=udp&host={sb.ip}&port=9376",
                           netns=sb.netns, timeout=10)
        assert json.loads(r.body) == {"responses": ["pod-b"]}
        r = await http_get(sa.ip, 8080, f"/dial?request=clientip&host={sa.ip}&port=8080", netns=sb.netns)
        assert json.loads(r.body)["responses"][0].startswith(sa.ip + ":")  # the client was pod a
        r = await http_get(sa.ip, 8080, f"/dial?request=x&host={sb.ip}&port=1", netns=sb.netns, timeout=10)
        out = json.loads(r.body)
        assert "responses" not in out and "connection refused" in out["errors"][0]
        assert (await http_get(sa.ip, 8080, "/dial?host=1.2.3.4&port=1", netns=sb.netns)).status == 400

        # the same port twice in one pod fails like a real bind would
        with pytest.raises(ContainerStartError) as err:
            await node.start_container(sa, a, {"name": "web2", "image": AGNHOST, "args": ["netexec"]})
        assert err.value.reason == "Error" and "in use" in err.value.message

        # /exit?code=3 ends the container with that code; the port is free again
        r = await http_get(sa.ip, 8080, "/exit?code=3", netns=sb.netns)
        assert r.ok and await asyncio.wait_for(web.wait(), 5) == 3
        assert not (await tcp_connect(sa.ip, 8080, netns=sb.netns)).ok

        assert await ngx.stop(1) == 0 and await shn.stop(1) == 0
        assert "Started HTTP server on port 8080" in open(web.log_path).read()
        assert await asyncio.wait_for(web.wait(), 1) == 3

        for pod in (a, b):
            await node.remove_sandbox(pod["metadata"]["uid"])
        return sa, sb

    sa, sb = asyncio.run(scenario())
    left = _netns_list()
    assert sa.netns not in left and sb.netns not in left
    _veths_gone(node.node_netns, sa.veth, sb.veth)
    assert node.ipam.allocations == {}


def test_cni0_keeps_its_mac_when_pods_come_and_go(node):
    """A bridge that picks its own MAC takes its lowest port's and changes it when that pod goes,
    leaving the other pods' ARP entry for their gateway stale (~30 s without their own node)."""
    async def scenario():
        await node.setup_node()
        mac = lambda: json.loads(subprocess.run(  # noqa: E731
            ["ip", "-n", node.node_netns, "-j", "link", "show", "cni0"], capture_output=True, text=True,
            check=True).stdout)[0]["address"]
        assert mac() == "0a:58:0a:f4:07:01"                # 10.244.7.1
        pods = [_pod(f"p{i}", {"name": "c", "image": "registry.k8s.io/pause:3.9"}) for i in range(2)]
        for pod in pods:
            await node.create_sandbox(pod)
        await node.remove_sandbox(pods[0]["metadata"]["uid"])
        assert mac() == "0a:58:0a:f4:07:01"
        await node.remove_sandbox(pods[1]["metadata"]["uid"])

    asyncio.run(scenario())


def test_netexec_delay_shutdown_keeps_serving_with_readyz_failing(node):
    """agnhost netexec --delay-shutdown=N: after SIGTERM /readyz answers 503 "shutting down"
    while /hostname still works, then it exits 0 after N seconds; SIGKILL cuts that short."""
    async def scenario():
        await node.setup_node()
        args = ["netexec", "--http-port=8080", "--udp-port=8080", "--delay-shutdown=2"]
        a = _pod("slow", {"name": "web", "image": AGNHOST, "args": args})
        client = _pod("client", {"name": "p", "image": "registry.k8s.io/pause:3.9"})
        sa, sc = await node.create_sandbox(a), await node.create_sandbox(client)
        web = await node.start_container(sa, a, a["spec"]["containers"][0])
        ready = await http_get(sa.ip, 8080, "/readyz", netns=sc.netns)
        assert (ready.status, ready.body) == (200, b"ok")
        started = time.monotonic()
        stopping = asyncio.ensure_future(web.stop(30))
        await asyncio.sleep(0.3)
        ready = await http_get(sa.ip, 8080, "/readyz", netns=sc.netns)
        assert (ready.status, ready.body) == (503, b"shutting down")
        assert (await http_get(sa.ip, 8080, "/hostname", netns=sc.netns)).body == b"slow"
        assert await asyncio.wait_for(stopping, 5) == 0 and time.monotonic() - started >= 1.9
        assert "Sleeping 2 seconds before terminating..." in open(web.log_path).read()

        again = await node.start_container(sa, a, a["spec"]["containers"][0])
        stopping = asyncio.ensure_future(again.stop(30))
        await asyncio.sleep(0.2)
        again.kill()
        assert await asyncio.wait_for(stopping, 1) == 137
        for pod in (a, client):
            await node.remove_sandbox(pod["metadata"]["uid"])

    asyncio.run(scenario())


def test_process_container_logs_env_exec_and_stop(node):
    async def scenario():
        await node.setup_node()
        c = {"name": "main", "image": "busybox", "command": ["sh", "-c"],
             "args": ["echo started $(POD_NAME) $MSG; hostname; echo oops >&2; exec sleep 600"],
             "env": [{"name": "MSG", "value": "hello"},
                     {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
        pod = _pod("pod-c", c)
        sc = await node.create_sandbox(pod)
        proc = await node.start_container(sc, pod, c, restart_count=0)
        assert proc.pid > 0
        res = await exec_in(sc.netns, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], timeout=5)
        assert res.exit_code == 0 and f" {sc.ip}/24 " in res.stdout.decode()
        slow = await exec_in(sc.netns, ["sleep", "5"], timeout=0.3)
        assert slow.timed_out and slow.exit_code == 137
        for _ in range(50):
            log = open(proc.log_path).read()
            if "oops" in log:
                break
            await asyncio.sleep(0.1)
        assert "started pod-c hello" in log and "\npod-c\n" in log and "oops" in log
        assert proc.log_path.endswith(f"default_pod-c_{pod['metadata']['uid']}/main/0.log")
        code = await proc.stop(5)
        assert code == 143  # sleep ended by SIGTERM

        # a process ignoring SIGTERM is SIGKILLed after the grace period
        stubborn = {"name": "stubborn", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; sleep 600 & wait"]}
        hold = await node.start_container(sc, pod, stubborn)
        await asyncio.sleep(0.2)
        assert await hold.stop(0.3) == 137

        # kill: SIGKILL now, for a process and a built-in app alike
        victim = await node.start_container(sc, pod, {"name": "v", "image": "busybox", "command": ["sleep", "600"]})
        victim.kill()
        assert await asyncio.wait_for(victim.wait(), 5) == 137
        pause = await node.start_container(sc, pod, {"name": "p", "image": "registry.k8s.io/pause:3.9"})
        pause.kill()
        assert await asyncio.wait_for(pause.wait(), 1) == 137

        missing = {"name": "x", "image": "busybox", "command": ["no-such-binary-netemu"]}
        with pytest.raises(ContainerStartError) as err:
            await node.start_container(sc, pod, missing)
        assert err.value.reason == "StartError" and "not found" in err.value.message
        with pytest.raises(ContainerStartError) as err:
            await node.start_container(sc, pod, {"name": "y", "image": "redis:7"})
        assert err.value.reason == "ImageNotSupported" and "agnhost" in err.value.message
        await node.remove_sandbox(pod["metadata"]["uid"])
        return sc

    sc = asyncio.run(scenario())
    assert sc.netns not in _netns_list()


def test_node_network_and_routes(node):
    async def scenario():
        await node.setup_node()
        await node.setup_node()  # idempotent
        nodes = [
            {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.7.0/24"}},
            {"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.244.8.0/24"},
             "status": {"addresses": [{"type": "InternalIP", "address": "172.31.9.3"}]}},
        ]
        # the gateway must be reachable: give the node an address on a made-up node network
        subprocess.run(["ip", "-n", node.node_netns, "link", "add", "eth1", "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", node.node_netns, "addr", "add", "172.31.9.2/24", "dev", "eth1"], check=True)
        subprocess.run(["ip", "-n", node.node_netns, "link", "set", "eth1", "up"], check=True)
        replace, delete = await node.sync_routes(nodes, "n1")
        assert replace and not delete
        assert await node.network.current_routes() == {"10.244.8.0/24": "172.31.9.3"}
        assert await node.sync_routes(nodes, "n1") == ([], [])
        await node.sync_routes(nodes[:1], "n1")
        assert await node.network.current_routes() == {}

    asyncio.run(scenario())
    ns = node.node_netns
    show = lambda *a: subprocess.run(["ip", "netns", "exec", ns, *a], capture_output=True, text=True).stdout
    assert show("sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
    assert show("sysctl", "-n", "net.bridge.bridge-nf-call-iptables").strip() == "1"
    assert "10.244.7.1/24" in show("ip", "-o", "addr", "show", "dev", "cni0")


def test_agent_restart_keeps_ips_and_kills_old_processes(node, tmp_path):
    pod = _pod("pod-r", {"name": "c", "image": "busybox", "command": ["sleep", "600"]})
    other = _pod("pod-gone", {"name": "c", "image": "nginx"})

    async def first_run():
        await node.setup_node()
        sb = await node.create_sandbox(pod)
        await node.create_sandbox(other)
        proc = await node.start_container(sb, pod, pod["spec"]["containers"][0])
        return sb, proc.pid  # the agent "dies" here: its handles are gone, the process is not

    sb, pid = asyncio.run(first_run())
    os.kill(pid, 0)  # still running
    again = NodeRuntime(node.state_dir, "10.244.7.0/24", node_netns=node.node_netns)

    async def second_run():
        known = await again.recover()
        assert known == {pod["metadata"]["uid"]: sb.ip, other["metadata"]["uid"]: known[other["metadata"]["uid"]]}
        for _ in range(50):
            if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("old container process survived recover()")
        assert await again.gc_sandboxes({pod["metadata"]["uid"]}) == [other["metadata"]["uid"]]
        sb2 = await again.create_sandbox(pod)  # reused, same address
        assert sb2.ip == sb.ip
        r = await exec_in(sb2.netns, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], timeout=5)
        assert f" {sb.ip}/24 " in r.stdout.decode()
        await again.remove_sandbox(pod["metadata"]["uid"])

    asyncio.run(second_run())
    assert pod_netns(other["metadata"]["uid"]) not in _netns_list()
    assert pod_netns(pod["metadata"]["uid"]) not in _netns_list()
    _veths_gone(node.node_netns, sb.veth)


def test_failed_sandbox_leaves_nothing(node):
    """No cni0 on the node (setup_node not called): the veth cannot join the bridge."""
    pod = _pod("pod-f", {"name": "c", "image": "nginx"})

    async def scenario():
        with pytest.raises(Exception) as err:
            await node.create_sandbox(pod)
        assert "cni0" in str(err.value)

    asyncio.run(scenario())
    assert pod_netns(pod["metadata"]["uid"]) not in _netns_list()
    assert node.ipam.allocations == {}
    links = subprocess.run(["ip", "-n", node.node_netns, "-o", "link"], capture_output=True, text=True).stdout
    assert "veth" not in links


def test_concurrent_creates_of_one_pod_make_one_sandbox(node):
    pod = _pod("pod-twice", {"name": "c", "image": "nginx"})

    async def scenario():
        await node.setup_node()
        one, two = await asyncio.gather(node.create_sandbox(pod), node.create_sandbox(pod))
        assert one == two
        r = await exec_in(one.netns, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"], timeout=5)
        assert f" {one.ip}/24 " in r.stdout.decode()
        await node.remove_sandbox(pod["metadata"]["uid"])

    asyncio.run(scenario())
    assert pod_netns(pod["metadata"]["uid"]) not in _netns_list()


def test_host_network_pod_listens_in_the_node_namespace(node):
    host_pod = _pod("hostnet", {"name": "c", "image": AGNHOST, "args": ["netexec", "--http-port=18080", "--udp-port=-1"]})
    client = _pod("client", {"name": "c", "image": "registry.k8s.io/pause:3.9"})

    async def scenario():
        await node.setup_node()
        hs = node.host_sandbox(host_pod, "10.244.7.1", "node-1")
        app = await node.start_container(hs, host_pod, host_pod["spec"]["containers"][0])
        cs = await node.create_sandbox(client)
        r = await http_get("10.244.7.1", 18080, "/hostname", netns=cs.netns)  # the node's cni0 IP
        assert r.body == b"node-1", r.message
        assert (await http_get("10.244.7.1", 18080, "/healthz", netns=cs.netns)).status == 412  # no UDP server
        await app.stop(1)
        await node.remove_sandbox(host_pod["metadata"]["uid"])  # nothing to remove: no error
        await node.remove_sandbox(client["metadata"]["uid"])

    asyncio.run(scenario())
