"""The ReplicaSet controller's creates in slow-start batches (upstream slowStartBatch, v1.32
pkg/controller/replicaset/replica_set.go) and its deletes all at once."""

import asyncio
from types import SimpleNamespace

import pytest

from netemu.api import errors
from netemu.controllers.replicaset import ReplicaSetController, slow_start_batch
from netemu.controllers.runtime import Expectations


def test_batches_double_and_run_concurrently():
    in_flight, batches = [0], []

    async def fn():
        in_flight[0] += 1
        batches.append(in_flight[0])
        await asyncio.sleep(0)
        in_flight[0] -= 1

    assert asyncio.run(slow_start_batch(300, 1, fn)) == (300, None)
    # peak concurrency seen at each call: batches of 1, 2, 4, ..., 128 and the last 45
    peaks, i = [], 0
    for size in (1, 2, 4, 8, 16, 32, 64, 128, 45):
        peaks.append(max(batches[i:i + size]))
        i += size
    assert peaks == [1, 2, 4, 8, 16, 32, 64, 128, 45]


def test_a_failing_batch_stops_the_rest_after_it_finished():
    calls = [0]

    async def fn():
        calls[0] += 1
        if calls[0] == 5:                     # one call of the third batch (calls 4..7)
            raise errors.Forbidden("exceeded quota")

    ok, err = asyncio.run(slow_start_batch(100, 1, fn))
    assert calls[0] == 7 and ok == 6 and isinstance(err, errors.Forbidden)


def test_an_error_that_is_not_an_api_answer_is_raised():
    async def fn():
        raise asyncio.TimeoutError()

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(slow_start_batch(3, 1, fn))


class _Api:
    def __init__(self, fail_after=None):
        self.created, self.deleted, self.in_flight, self.most = [], [], 0, 0
        self.fail_after = fail_after

    async def _call(self):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1

    async def create(self, rt, obj, ns):
        if self.fail_after is not None and len(self.created) >= self.fail_after:
            raise errors.Forbidden('pods "x" is forbidden: exceeded quota')
        await self._call()
        self.created.append(obj["metadata"]["name"])
        return obj

    async def delete(self, rt, name, ns):
        await self._call()
        self.deleted.append(name)


def _controller(api):
    ctl = ReplicaSetController(api, {}, SimpleNamespace(), SimpleNamespace(event=lambda *a, **k: None))
    ctl.expectations = Expectations()          # what setup() makes, without the informers
    return ctl


def _rs(replicas):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}}


def test_scale_up_creates_every_pod_in_growing_concurrent_batches():
    api = _Api()
    ctl = _controller(api)
    assert asyncio.run(ctl._manage("default/web", _rs(40), [])) is None
    assert len(set(api.created)) == 40 and api.most == 16     # batches 1,2,4,8,16,9
    assert not ctl.expectations.satisfied("default/web")       # waits to see its 40 pods


def test_a_refused_create_is_reported_and_stops_the_scale_up():
    api = _Api(fail_after=3)
    ctl = _controller(api)
    failure = asyncio.run(ctl._manage("default/web", _rs(40), []))
    assert "exceeded quota" in failure and len(api.created) == 3


def test_scale_down_deletes_concurrently():
    api = _Api()
    ctl = _controller(api)
    pods = [{"metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"},
                          "ownerReferences": [{"uid": "u1", "controller": True}]},
             "status": {"phase": "Running"}} for i in range(10)]
    asyncio.run(ctl._manage("default/web", _rs(2), pods))
    assert len(api.deleted) == 8 and api.most == 8
