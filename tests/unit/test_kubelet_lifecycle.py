"""Lifecycle hooks (postStart, preStop) as upstream's kuberuntime runs them (v1.32
kuberuntime_container.go startContainer/killContainer, lifecycle/handlers.go): the pod worker
against the fake runtime of test_kubelet_worker, the handlers against a loopback HTTP server."""

import asyncio
import signal
import time

import pytest

from netemu.agent.kubelet.hooks import failure_message, hook_of
from netemu.agent.kubelet.probing import run_hook
from netemu.agent.kubelet.termination import Termination
from netemu.agent.kubelet.worker import PodWorker
from tests.unit.test_kubelet_worker import FakeRuntime, env, last, make_pod, until  # noqa: F401 (env: fixture)


class HookRuntime(FakeRuntime):
    """Exec answers by command: 'block' waits until released, 'fail' exits 3 with output."""

    def __init__(self):
        super().__init__()
        self.execs, self.release = [], None

    async def start_container(self, pod, container, restart_count):
        handle = await super().start_container(pod, container, restart_count)
        handle.times, plain = [], handle.signal
        handle.signal = lambda signum: (handle.times.append(time.monotonic()), plain(signum))
        return handle

    async def exec(self, pod, container, argv, timeout):
        self.execs.append((argv, timeout, time.monotonic()))
        if argv[0] == "block":
            await self.release.wait()
        if argv[0] == "fail":
            return 3, b"no such thing"
        return 0, b""


@pytest.fixture
def hooked(env):  # noqa: F811
    _, api, ctx = env
    rt = HookRuntime()
    rt.release, rt.ignore_term = asyncio.Event(), True
    ctx.runtime = rt
    return rt, api, ctx


def container(**lifecycle):
    return [{"name": "app", "image": "agnhost", "lifecycle": {k: {"exec": {"command": v}} for k, v in lifecycle.items()}}]


def deleting(containers, grace):
    return make_pod(containers, deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=grace)


def test_prestop_runs_before_sigterm_and_sigkill_waits_out_the_grace_period(hooked):
    rt, api, ctx = hooked

    async def main():
        w = PodWorker(ctx, make_pod(container(preStop=["block"])))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started and api.statuses and "running" in last(api)["state"])
        handle = rt.started[0][1]
        w.update(deleting(container(preStop=["block"]), 30))
        await until(lambda: rt.execs)
        await asyncio.sleep(0.3)
        assert handle.signals == [] and not task.done()        # the hook runs: no SIGTERM yet
        assert rt.execs[0][0] == ["block"] and 29 <= rt.execs[0][1] <= 30   # bounded by the grace left
        rt.release.set()
        await until(lambda: handle.signals == [signal.SIGTERM])
        await asyncio.sleep(0.3)
        assert handle.signals == [signal.SIGTERM]                  # SIGKILL only when the period is over
        w.removed()                                                # force delete: now
        await asyncio.wait_for(task, 10)
        assert handle.signals == [signal.SIGTERM, signal.SIGKILL]
        assert ("Normal", "Killing", "Stopping container app") in api.events
    asyncio.run(main())


def test_prestop_longer_than_the_grace_period_is_abandoned_then_two_seconds_to_sigkill(hooked):
    rt, api, ctx = hooked

    async def main():
        w = PodWorker(ctx, make_pod(container(preStop=["block"])))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        handle = rt.started[0][1]
        w.update(deleting(container(preStop=["block"]), 1))
        await until(lambda: rt.execs)
        await asyncio.wait_for(task, 10)
        begun = rt.execs[0][2]
        termed, killed = handle.times
        assert termed - begun >= 0.9                       # the hook had the whole period
        assert killed - termed >= 1.9                      # minimumGracePeriodInSeconds after it
        assert handle.signals == [signal.SIGTERM, signal.SIGKILL] and api.deleted == ["u1"]
    asyncio.run(main())


def test_failed_prestop_is_an_event_without_its_message_and_sigterm_follows(hooked):
    rt, api, ctx = hooked
    rt.ignore_term = False

    async def main():
        w = PodWorker(ctx, make_pod(container(preStop=["fail", "secret"])))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        w.update(deleting(container(preStop=["fail", "secret"]), 30))
        await asyncio.wait_for(task, 10)
        assert rt.started[0][1].signals == [signal.SIGTERM] and api.deleted == ["u1"]
        assert ("Warning", "FailedPreStopHook", "PreStopHook failed") in api.events
    asyncio.run(main())


def test_poststart_runs_before_the_container_counts_as_running_and_its_failure_restarts_it(hooked):
    rt, api, ctx = hooked
    rt.ignore_term = False

    async def main():
        w = PodWorker(ctx, make_pod(container(postStart=["block"])))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.execs)
        await asyncio.sleep(0.2)
        assert not api.statuses or "running" not in last(api)["state"]   # the sync waits for the hook
        rt.release.set()
        await until(lambda: api.statuses and "running" in last(api)["state"])
        assert rt.started[0][1].signals == []
        w.update(make_pod(container(postStart=["fail"])))     # (the spec of a new instance)
        w.containers["app"] = container(postStart=["fail"])[0]
        rt.started[0][1].finish(1)
        await until(lambda: len(rt.started) >= 2 and rt.started[1][1].signals == [signal.SIGTERM])
        await until(lambda: len(rt.started) >= 3)                  # restarted per restartPolicy Always
        assert ("Warning", "FailedPostStartHook", "PostStartHook failed") in api.events
        w.removed()
        await asyncio.wait_for(task, 10)
    asyncio.run(main())


def test_hook_of_and_upstream_messages():
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}
    c = {"name": "app", "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "x"]}},
                                      "postStart": {"tcpSocket": {"port": 80}}}}
    pre, post = hook_of(c, "preStop"), hook_of(c, "postStart")
    assert (pre.handler, post.handler, hook_of({"name": "x"}, "preStop")) == ("exec", "tcpSocket", None)
    assert failure_message(pre, c, pod, "command exited with 1", "out") == (
        'Exec lifecycle hook ([/bin/sh -c x]) for Container "app" in Pod "p_ns(u)" failed - error: '
        'command exited with 1, message: "out"')
    assert failure_message(post, c, pod, "x") == "Cannot run handler: invalid handler: tcpSocket"
    with pytest.raises(ValueError):
        hook_of(c, "preStart")


def test_termination_timeline_after_a_hook():
    pod = deleting(None, 10)
    t = Termination.begin(pod, 100.0)
    assert t.hook_budget(104.0) == 6.0 and t.kill_at("a") == 110.0
    t.hook_started("a")
    assert t.action(1e9, True, "a") == "wait"                      # no SIGKILL while the hook runs
    t.hook_ended("a", 109.5)                                       # 0.5 s left: at least 2 s after it
    assert t.kill_at("a") == 111.5 and t.kill_at("b") == 110.0
    assert t.action(111.0, True, "a") == "wait" and t.action(111.0, True, "b") == "kill"
    t.shorten(deleting(None, 0), 105.0)                            # a force delete rules them all
    assert t.kill_at("a") == 105.0


def test_http_hook_any_status_is_done_only_a_transport_error_fails():
    seen = []

    async def serve(reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        seen.append(head)
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = {"name": "app", "ports": [{"name": "web", "containerPort": port}],
             "lifecycle": {"preStop": {"httpGet": {"path": "drain", "port": "web",
                                                    "httpHeaders": [{"name": "X-A", "value": "1"}]}}}}
        pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}
        hook = hook_of(c, "preStop")
        assert await run_hook(hook, c, pod, "127.0.0.1", None, 5) is None
        assert seen[0].startswith("GET /drain HTTP/1.1") and "User-Agent: kube-lifecycle/1.32" in seen[0]
        assert "X-A: 1" in seen[0]
        server.close()
        await server.wait_closed()
        error = await run_hook(hook, c, pod, "127.0.0.1", None, 5)
        assert error.startswith(f'HTTP lifecycle hook (drain) for Container "app" in Pod "p_ns(u)" failed - error: '
                                f'Get "http://127.0.0.1:{port}/drain": dial tcp 127.0.0.1:{port}: connect: connection refused')
    asyncio.run(main())


def test_an_exec_given_up_by_its_caller_is_killed(tmp_path):
    """A preStop hook abandoned at the end of the grace period (or with its sandbox) leaves no
    process behind: exec_in kills the command's process group when it is cancelled."""
    from netemu.agent.runtime.probe import exec_in
    pidfile = tmp_path / "pid"

    async def main():
        task = asyncio.ensure_future(exec_in(None, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=60))
        await until(lambda: pidfile.exists() and pidfile.read_text().strip())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pid = int(pidfile.read_text())
        await until(lambda: not _running(pid), 10)
    asyncio.run(main())


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False
