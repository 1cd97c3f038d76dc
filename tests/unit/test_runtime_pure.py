"""Pure parts of the runtime: route plans, env building and $(VAR) expansion, HTTP parsing."""

from __future__ import annotations

from netemu.agent.runtime.httpserve import HTTPProtocol, Response
from netemu.agent.runtime.logs import container_log_path
from netemu.agent.runtime.nodenet import peer_routes, plan_routes
from netemu.agent.runtime.process import container_env, expand

import os

import pytest


def test_plan_routes_adds_changes_and_deletes():
    replace, delete = plan_routes({"10.244.2.0/24": "172.18.0.3", "10.244.3.0/24": "172.18.0.4"},
                                  {"10.244.2.0/24": "172.18.0.9", "10.244.4.0/24": "172.18.0.5"})
    assert replace == ["route replace 10.244.2.0/24 via 172.18.0.9 proto 77",
                       "route replace 10.244.4.0/24 via 172.18.0.5 proto 77"]
    assert delete == ["route del 10.244.3.0/24 proto 77"]
    assert plan_routes({"a": "b"}, {"a": "b"}) == ([], [])


def test_peer_routes_skip_self_and_incomplete_nodes():
    def node(name, cidr=None, ip=None):
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
                "status": {"addresses": [{"type": "Hostname", "address": name}] +
                           ([{"type": "InternalIP", "address": ip}] if ip else [])}}
    nodes = [node("me", "10.244.1.0/24", "172.18.0.3"), node("w2", "10.244.2.0/24", "172.18.0.4"),
             node("w3", None, "172.18.0.5"), node("w4", "10.244.4.0/24")]
    assert peer_routes(nodes, "me") == {"10.244.2.0/24": "172.18.0.4"}


def test_peer_routes_skip_deleting_nodes_and_normalise_addresses():
    """One rule for the kubelet and the runtime (they had drifted: one kept deleting Nodes, one
    compared raw spellings with the kernel's and replaced unchanged routes on every sync)."""
    def node(name, cidr, ip, deleting=False):
        meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
        return {"metadata": meta, "spec": {"podCIDR": cidr},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
    nodes = [node("me", "10.244.1.0/24", "172.18.0.3"),
             node("going", "10.244.2.0/24", "172.18.0.4", deleting=True),
             node("v6", "FD00:10:244:3:0::/64", "FD00::5"),
             node("bad-cidr", "10.244.4.7/24", "172.18.0.6"),       # host bits set: not a network
             node("bad-ip", "10.244.5.0/24", "172.18.0.300")]
    desired = peer_routes(nodes, "me")
    assert desired == {"fd00:10:244:3::/64": "fd00::5"}
    # what ``ip -j route`` reports for that route afterwards: nothing to do on the next sync
    assert plan_routes({"fd00:10:244:3::/64": "fd00::5"}, desired) == ([], [])


def test_env_values_field_refs_and_expansion():
    c = {"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(NOPE)-$$(A)"},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    env = container_env(c, "pod-1", {"SVC_HOST": "10.96.0.5"}, {"status.podIP": "10.244.1.7"})
    assert env["A"] == "x" and env["B"] == "x-$(NOPE)-$(A)" and env["IP"] == "10.244.1.7"
    assert env["HOSTNAME"] == "pod-1" and env["SVC_HOST"] == "10.96.0.5" and "S" not in env
    assert expand("$(A) $$ $(", {"A": "1"}) == "1 $ $("


def test_log_path_layout_and_bad_names(tmp_path):
    p = container_log_path(str(tmp_path), "ns", "pod", "u-1", "c", 2)
    assert p.endswith("ns_pod_u-1/c/2.log")
    with pytest.raises(ValueError):
        container_log_path(str(tmp_path), "ns", "../x", "u", "c")


class FakeTransport:
    def __init__(self):
        self.out, self.closed = b"", False

    def get_extra_info(self, key):
        return ("10.244.1.9", 40000)

    def write(self, data):
        self.out += data

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed


def _serve(chunks, handler):
    proto, t = HTTPProtocol(handler), FakeTransport()
    proto.connection_made(t)
    for c in chunks:
        proto.data_received(c)
    return t


def test_http_keepalive_pipelining_split_reads_and_body():
    seen = []

    def handler(req):
        seen.append((req.method, req.path, req.form(), req.body, req.remote_addr))
        return Response(body=b"ok")
    t = _serve([b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n",
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\ny=2"], handler)
    assert seen == [("GET", "/a", {"x": "1"}, b"", "10.244.1.9:40000"),
                    ("POST", "/b", {"y": "2"}, b"y=2", "10.244.1.9:40000")]
    assert t.out.count(b"HTTP/1.1 200 OK") == 2 and not t.closed


def test_http_10_closes_and_garbage_gets_400():
    t = _serve([b"GET / HTTP/1.0\r\n\r\n"], lambda r: Response(body=b"x"))
    assert t.closed and b"Connection: close" in t.out and t.out.endswith(b"\r\n\r\nx")
    t = _serve([b"hello\r\n\r\n"], lambda r: Response())
    assert t.out.startswith(b"HTTP/1.1 400") and t.closed


def test_http_handler_error_answers_500():
    def boom(req):
        raise RuntimeError("bad")
    t = _serve([b"GET / HTTP/1.1\r\n\r\n"], boom)
    assert t.out.startswith(b"HTTP/1.1 500")


def test_http_async_handler_keeps_pipelined_order():
    import asyncio

    async def slow():
        await asyncio.sleep(0.01)
        return Response(body=b"first")

    def handler(req):
        return slow() if req.path == "/slow" else Response(body=b"second")

    async def run():
        t = _serve([b"GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n"], handler)
        assert t.out == b""  # nothing before the slow answer is ready
        for _ in range(100):
            if t.out.count(b"HTTP/1.1") == 2:
                break
            await asyncio.sleep(0.005)
        return t.out
    out = asyncio.run(run())
    assert out.index(b"first") < out.index(b"second")


def test_dial_rejects_bad_parameters_before_dialing():
    import asyncio
    import json

    from netemu.agent.runtime.dial import dial
    from netemu.agent.runtime.httpserve import Request

    def ask(query):
        req = Request("GET", "/dial?" + query, "HTTP/1.1", {}, b"", ("10.0.0.1", 1))
        return asyncio.run(dial(None, req))
    assert ask("host=10.0.0.2&port=80").status == 400                      # no request
    assert b"request parameter not specified" in ask("host=10.0.0.2&port=80").body
    assert ask("request=x&host=10.0.0.2&port=80&tries=z").status == 400
    assert ask("request=x&host=10.0.0.2&port=80&protocol=sctp").status == 400
    bad_host = ask("request=x&host=web.default.svc&port=80")
    assert bad_host.status == 400 and b"no DNS" in bad_host.body
    assert json.loads(ask("request=x&host=10.0.0.2&port=80&tries=0").body) == {}


def test_log_lines_are_buffered_flushed_and_rotated(tmp_path, monkeypatch):
    import asyncio

    from netemu.agent.runtime import logs

    path = str(tmp_path / "ns_p_u" / "c" / "0.log")

    async def run():
        log = logs.LogFile(path)
        log.write("GET /hostname")
        assert open(path).read() == ""          # waits in memory...
        await asyncio.sleep(logs.FLUSH_AFTER + 0.1)
        assert open(path).read().endswith(" GET /hostname\n")  # ...and is written soon after
        monkeypatch.setattr(logs, "MAX_BYTES", 100)
        for i in range(logs.FLUSH_LINES):        # a full buffer is written at once
            log.write(f"line {i}")
        assert os.path.getsize(path + ".1") > 100 and os.path.getsize(path) == 0
        log.write("after rotation")
        log.flush()
        assert open(path).read().endswith("after rotation\n")
    asyncio.run(run())
    logs.LogFile(path).write("no loop: written at once")
    assert open(path).read().endswith("no loop: written at once\n")
