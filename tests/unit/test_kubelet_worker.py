"""The pod worker against a fake runtime and a fake API: sandbox + start, restart with back-off,
liveness kill, unsupported image, graceful termination, status writes retried after API errors.
Probes here are exec probes answered by the fake runtime (no sockets, no root)."""

import asyncio
import signal

import pytest

from netemu.agent.kubelet.backoff import Backoff
from netemu.agent.kubelet.worker import PodWorker, WorkerContext


class FakeHandle:
    counter = 0

    def __init__(self):
        FakeHandle.counter += 1
        self.id = f"c{FakeHandle.counter}"
        self.exit = asyncio.get_running_loop().create_future()
        self.signals = []
        self.ignore_term = False

    async def wait(self):
        return await asyncio.shield(self.exit)

    def signal(self, signum):
        self.signals.append(signum)
        if signum == signal.SIGKILL or not self.ignore_term:
            if not self.exit.done():
                self.exit.set_result(128 + signum)

    def finish(self, code):
        self.exit.set_result(code)


class FakeRuntime:
    def __init__(self):
        self.started, self.sandboxes, self.removed = [], [], []
        self.exec_code = 0
        self.ignore_term = False
        self.execs = []

    def unsupported(self, container):
        if container["image"] == "unknown:1":
            return "ImageNotSupported", "image unknown:1 is not supported; supported: agnhost, nginx"
        return None

    async def create_sandbox(self, pod):
        self.sandboxes.append(pod["metadata"]["uid"])
        return "10.244.1.7"

    async def remove_sandbox(self, pod):
        self.removed.append(pod["metadata"]["uid"])

    async def start_container(self, pod, container, restart_count):
        h = FakeHandle()
        h.ignore_term = self.ignore_term
        self.started.append((container["name"], h))
        return h

    async def exec(self, pod, container, argv, timeout):
        self.execs.append(list(argv))
        return self.exec_code, b""


class FakeApi:
    def __init__(self):
        self.statuses, self.deleted, self.events = [], [], []
        self.fail = 0

    async def write_status(self, pod, status):
        if self.fail:
            self.fail -= 1
            raise ConnectionError("api unreachable")
        self.statuses.append(status)

    async def finish_delete(self, pod):
        self.deleted.append(pod["metadata"]["uid"])


def make_pod(containers=None, policy="Always", **meta):
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1", **meta},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 30,
                     "containers": containers or [{"name": "app", "image": "agnhost"}]}}


@pytest.fixture
def env(tmp_path):
    rt, api = FakeRuntime(), FakeApi()
    ctx = WorkerContext(rt, api.write_status, api.finish_delete, "172.18.0.3", str(tmp_path),
                        Backoff(initial=0.2, maximum=0.4), retry=0.1,
                        event=lambda pod, etype, reason, message: api.events.append((etype, reason, message)))
    return rt, api, ctx


async def until(cond, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def last(api, name="app"):
    return next(c for c in api.statuses[-1]["containerStatuses"] if c["name"] == name)


def test_runs_pod_then_restarts_with_backoff(env):
    rt, api, ctx = env

    async def main():
        w = PodWorker(ctx, make_pod())
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses and api.statuses[-1]["phase"] == "Running"
                    and "running" in last(api)["state"])
        st = api.statuses[-1]
        assert st["podIP"] == "10.244.1.7" and last(api)["ready"] is True
        assert (tmp := w.records["app"]).container_id.startswith("netemu://")
        rt.started[-1][1].finish(1)
        await until(lambda: "waiting" in last(api)["state"])
        assert last(api)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert last(api)["lastState"]["terminated"]["exitCode"] == 1
        await until(lambda: len(rt.started) == 2 and "running" in last(api)["state"])
        assert last(api)["restartCount"] == 1
        reasons = [r for _, r, _ in api.events]
        assert reasons[:3] == ["Pulled", "Created", "Started"] and "BackOff" in reasons
        w.removed()
        await task
        assert rt.removed == ["u1"] and api.deleted == []      # gone from the API: nothing to finish
    asyncio.run(main())


def test_never_policy_completes(env):
    rt, api, ctx = env

    async def main():
        w = PodWorker(ctx, make_pod(policy="Never"))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        rt.started[0][1].finish(0)
        await until(lambda: api.statuses[-1]["phase"] == "Succeeded")
        await until(lambda: rt.removed == ["u1"])           # the finished pod's sandbox and IP are freed
        await asyncio.sleep(0.5)
        assert len(rt.started) == 1 and rt.removed == ["u1"]
        assert api.statuses[-1]["podIP"] == "10.244.1.7"
        w.removed()
        await task
    asyncio.run(main())


def test_failing_readiness_and_liveness(env):
    rt, api, ctx = env
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 0.05, "failureThreshold": 2}
    containers = [{"name": "app", "image": "agnhost", "readinessProbe": dict(probe),
                   "livenessProbe": dict(probe, failureThreshold=3)}]

    async def main():
        w = PodWorker(ctx, make_pod(containers))
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses and last(api)["ready"])
        ready = [c for c in api.statuses[-1]["conditions"] if c["type"] == "Ready"][0]
        assert ready["status"] == "True"
        rt.exec_code = 1
        await until(lambda: not last(api)["ready"])
        await until(lambda: len(rt.started) >= 2)           # liveness stopped and restarted it
        assert rt.started[0][1].signals == [signal.SIGTERM]  # killContainer: SIGTERM first
        rt.exec_code = 0
        await until(lambda: last(api)["ready"] and last(api)["restartCount"] >= 1)
        assert last(api)["lastState"]["terminated"]["exitCode"] == 143
        assert ("Warning", "Unhealthy", "Readiness probe failed: command exited with code 1") in api.events
        assert ("Normal", "Killing", "Container app failed liveness probe, will be restarted") in api.events
        w.removed()
        await task
    asyncio.run(main())


def test_liveness_kill_runs_prestop_then_sigterm_then_sigkill_after_the_probes_grace(env):
    """upstream killContainer for a failed liveness probe: the preStop hook, SIGTERM, and SIGKILL
    after the probe's own terminationGracePeriodSeconds (0 here: raised to the 2 s minimum),
    not the pod's 30 s."""
    rt, api, ctx = env
    rt.ignore_term = True
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 0.05, "failureThreshold": 1,
             "terminationGracePeriodSeconds": 0}
    containers = [{"name": "app", "image": "agnhost", "livenessProbe": probe,
                   "lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}}]

    async def main():
        w = PodWorker(ctx, make_pod(containers))
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        first = rt.started[0][1]
        loop = asyncio.get_running_loop()
        rt.exec_code = 1
        await until(lambda: first.signals)
        termed = loop.time()
        assert first.signals == [signal.SIGTERM] and ["drain"] in rt.execs
        await until(lambda: len(first.signals) == 2, timeout=10)
        assert first.signals == [signal.SIGTERM, signal.SIGKILL] and loop.time() - termed >= 1.5
        rt.exec_code = 0
        await until(lambda: len(rt.started) >= 2)
        w.removed()
        await task
    asyncio.run(main())


def test_an_ephemeral_container_added_later_runs_once_and_is_reported(env):
    """kubectl debug: the pod gains spec.ephemeralContainers through the API; the kubelet starts
    it in the running pod, reports it in ephemeralContainerStatuses, never restarts it, and the
    pod's phase and Ready follow its regular containers only."""
    rt, api, ctx = env

    async def main():
        pod = make_pod()
        w = PodWorker(ctx, pod)
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses and last(api)["ready"])
        debug = {"name": "debugger-x", "image": "busybox", "command": ["sh"], "stdin": True}
        w.update(dict(pod, spec=dict(pod["spec"], ephemeralContainers=[debug])))
        await until(lambda: len(rt.started) == 2)
        assert rt.started[1][0] == "debugger-x"
        await until(lambda: "ephemeralContainerStatuses" in api.statuses[-1])
        [ec] = api.statuses[-1]["ephemeralContainerStatuses"]
        assert ec["name"] == "debugger-x" and "running" in ec["state"]
        rt.started[1][1].finish(1)
        await until(lambda: "terminated" in api.statuses[-1]["ephemeralContainerStatuses"][0]["state"])
        await asyncio.sleep(0.6)                             # longer than the back-off: no restart
        assert len(rt.started) == 2 and api.statuses[-1]["phase"] == "Running" and last(api)["ready"]
        assert api.statuses[-1]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
        w.removed()
        await task
    asyncio.run(main())


def test_unsupported_image_waits_with_clear_reason(env):
    rt, api, ctx = env

    async def main():
        w = PodWorker(ctx, make_pod([{"name": "app", "image": "unknown:1"}]))
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses)
        waiting = last(api)["state"]["waiting"]
        assert waiting["reason"] == "ImageNotSupported" and "agnhost" in waiting["message"]
        assert api.statuses[-1]["phase"] == "Pending" and rt.started == []
        assert [r for _, r, _ in api.events] == ["Failed"]
        w.removed()
        await task
    asyncio.run(main())


def test_graceful_delete_sigterm_then_sigkill_then_finish(env):
    rt, api, ctx = env
    rt.ignore_term = True

    async def main():
        w = PodWorker(ctx, make_pod())
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        w.update(make_pod(deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=2))
        await until(lambda: rt.started[0][1].signals == [signal.SIGTERM])
        assert api.deleted == [] and not task.done()         # still inside its grace period
        await asyncio.wait_for(task, 30)
        assert rt.started[0][1].signals == [signal.SIGTERM, signal.SIGKILL]
        assert rt.removed == ["u1"] and api.deleted == ["u1"]
    asyncio.run(main())


def test_readiness_keeps_being_reported_while_the_pod_terminates(env):
    """Upstream stops liveness and startup probes of a terminating pod, not readiness: a
    draining server whose readiness fails (netexec --delay-shutdown's /readyz) becomes unready
    on the API, which is what takes it out of endpoints that only want ready ones."""
    rt, api, ctx = env
    rt.ignore_term = True
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 0.05, "failureThreshold": 1}

    async def main():
        w = PodWorker(ctx, make_pod([{"name": "app", "image": "agnhost", "readinessProbe": probe}]))
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses and last(api)["ready"])
        w.update(make_pod([{"name": "app", "image": "agnhost", "readinessProbe": probe}],
                          deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=30))
        await until(lambda: rt.started[0][1].signals == [signal.SIGTERM])
        rt.exec_code = 1
        await until(lambda: not last(api)["ready"])
        ready = [c for c in api.statuses[-1]["conditions"] if c["type"] == "Ready"][0]
        assert ready["status"] == "False" and api.deleted == []
        w.removed()
        await asyncio.wait_for(task, 30)
    asyncio.run(main())


def test_status_write_retried_after_api_error(env):
    rt, api, ctx = env
    api.fail = 2

    async def main():
        w = PodWorker(ctx, make_pod())
        task = asyncio.ensure_future(w.run())
        await until(lambda: api.statuses and api.statuses[-1]["phase"] == "Running")
        assert api.fail == 0 and len(rt.started) == 1          # the container was never touched
        w.removed()
        await task
    asyncio.run(main())


def test_init_containers_run_in_order_before_the_app(env):
    rt, api, ctx = env
    pod = make_pod()
    pod["spec"]["initContainers"] = [{"name": "i1", "image": "agnhost"}, {"name": "i2", "image": "agnhost"}]

    def cond(t):
        return [c for c in api.statuses[-1]["conditions"] if c["type"] == t][0]

    async def main():
        w = PodWorker(ctx, pod)
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        assert [n for n, _ in rt.started] == ["i1"]
        await until(lambda: api.statuses)
        assert cond("Initialized")["status"] == "False" and "[i1 i2]" in cond("Initialized")["message"]
        assert api.statuses[-1]["phase"] == "Pending"
        assert last(api)["state"]["waiting"]["reason"] == "PodInitializing"
        rt.started[0][1].finish(1)                          # fails: retried after back-off
        await until(lambda: len(rt.started) == 2)
        assert [n for n, _ in rt.started] == ["i1", "i1"]
        rt.started[1][1].finish(0)
        await until(lambda: len(rt.started) == 3)
        assert rt.started[2][0] == "i2"
        rt.started[2][1].finish(0)
        await until(lambda: len(rt.started) == 4 and api.statuses[-1]["phase"] == "Running"
                    and cond("Initialized")["status"] == "True")
        assert rt.started[3][0] == "app"
        inits = {c["name"]: c for c in api.statuses[-1]["initContainerStatuses"]}
        assert inits["i1"]["restartCount"] == 1 and inits["i2"]["state"]["terminated"]["reason"] == "Completed"
        w.removed()
        await task
    asyncio.run(main())


def test_failed_init_container_with_never_fails_the_pod(env):
    rt, api, ctx = env
    pod = make_pod(policy="Never")
    pod["spec"]["initContainers"] = [{"name": "i1", "image": "agnhost"}]

    async def main():
        w = PodWorker(ctx, pod)
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started)
        rt.started[0][1].finish(2)
        await until(lambda: api.statuses[-1]["phase"] == "Failed")
        await asyncio.sleep(0.5)
        assert [n for n, _ in rt.started] == ["i1"]              # the app never started
        w.removed()
        await task
    asyncio.run(main())


def test_restarted_agent_adopts_counts_and_does_not_rerun_finished_pods(env):
    rt, api, ctx = env
    running = make_pod()
    running["status"] = {"phase": "Running", "hostIP": "172.18.0.3", "podIP": "10.244.1.7",
                         "startTime": "2026-01-01T00:00:00Z",
                         "containerStatuses": [{"name": "app", "restartCount": 2,
                                                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]}
    done = make_pod(policy="Never")
    done["metadata"]["uid"] = "u2"
    done["status"] = {"phase": "Succeeded", "hostIP": "172.18.0.3", "podIP": "10.244.1.8",
                      "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"terminated": {
                          "exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T00:00:02Z"}}}]}

    async def main():
        w = PodWorker(ctx, running)
        task = asyncio.ensure_future(w.run())
        await until(lambda: rt.started and api.statuses and "running" in last(api)["state"])
        assert last(api)["restartCount"] == 3
        assert last(api)["lastState"]["terminated"]["reason"] == "Unknown"
        assert api.statuses[-1]["startTime"] == "2026-01-01T00:00:00Z"
        w.removed()
        await task
        n = len(rt.started)
        w2 = PodWorker(ctx, done)
        task2 = asyncio.ensure_future(w2.run())
        await until(lambda: "u2" in rt.removed)
        assert len(rt.started) == n and "u2" not in rt.sandboxes          # nothing ran, no new sandbox
        assert api.statuses[-1]["phase"] == "Succeeded" and api.statuses[-1]["podIP"] == "10.244.1.8"
        w2.removed()
        await task2
    asyncio.run(main())
