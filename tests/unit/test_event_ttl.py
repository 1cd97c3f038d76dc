"""Events expire an hour (``--event-ttl``) after their last change, as upstream's etcd lease does."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from netemu.api import kinds
from netemu.apiserver import eventttl
from netemu.cli.apiserver_cmd import parse_duration
from netemu.cli.main import UsageError
from netemu.testing.apiserver import api_server

EV = kinds.by_resource("", "v1", "events")
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def event(name, last, created="2026-01-01T00:00:00Z"):
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Started", "message": "m", "type": "Normal", "lastTimestamp": last}


def test_last_activity_is_the_latest_stamp():
    assert eventttl.expired(event("a", "2026-01-01T10:59:00Z"), NOW, 3600)
    assert not eventttl.expired(event("b", "2026-01-01T11:30:00Z"), NOW, 3600)
    series = {**event("c", "2026-01-01T01:00:00Z"), "series": {"lastObservedTime": "2026-01-01T11:59:00.000000Z"}}
    assert not eventttl.expired(series, NOW, 3600)
    assert not eventttl.expired({"metadata": {}}, NOW, 3600)           # no stamp at all: kept


def test_collect_deletes_only_expired_events(tmp_path):
    async def main():
        async with api_server(tmp_path, clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as srv:
            await srv.client.create(EV, event("old", "2026-01-01T10:00:00Z"))
            await srv.client.create(EV, event("fresh", "2026-01-01T11:50:00Z"))
            assert await eventttl.collect(srv.api.registry, NOW, 3600, page=1) == 1
            assert [e["metadata"]["name"] for e in (await srv.client.list(EV, "default")).items] == ["fresh"]
    asyncio.run(main())


def test_event_ttl_flag_takes_go_durations():
    assert parse_duration("1h", "--event-ttl") == 3600 and parse_duration("90s", "--event-ttl") == 90
    with pytest.raises(UsageError):
        parse_duration("soon", "--event-ttl")
