"""Pure helpers of the store: key ranges, stored JSON, and the watch fan-out hub."""

import asyncio

import pytest

from netemu.api.errors import BadRequest
from netemu.store.fanout import Change, Hub
from netemu.store.keys import (check_key, decode_object, encode_object, prefix_end,
                               prefix_end_bytes)


def test_prefix_end_bounds_exactly_the_prefix():
    end = prefix_end("/registry/pods/default/")
    assert end == "/registry/pods/default0"
    inside = ["/registry/pods/default/", "/registry/pods/default/a", "/registry/pods/default/\U0010ffff"]
    outside = ["/registry/pods/default2/a", "/registry/pods/default0", "/registry/pods/defaul"]
    assert all("/registry/pods/default/" <= k < end for k in inside)
    assert not any("/registry/pods/default/" <= k < end for k in outside)
    assert prefix_end("") is None
    assert prefix_end("/a\U0010ffff") == "/b"


def test_prefix_end_bytes_is_etcds_range_end():
    assert prefix_end_bytes(b"/registry/") == b"/registry0"
    assert prefix_end_bytes(b"a\xff\xff") == b"b"
    assert prefix_end_bytes(b"") == b"\x00"          # etcd: every key


def test_stored_json_drops_resource_version_and_keeps_the_callers_dict():
    obj = {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "7"}}
    text = encode_object(obj)
    assert "resourceVersion" not in text and obj["metadata"]["resourceVersion"] == "7"
    back = decode_object(text, 42)
    assert back == {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "42"}}
    assert decode_object('{"kind": "X"}', 3)["metadata"] == {"resourceVersion": "3"}
    for bad in ({"x": float("nan")}, {"x": {1, 2}}, "string"):
        with pytest.raises(BadRequest):
            encode_object(bad)
    for bad in ("", "x", "/", "/a\x00b", b"/bytes"):
        with pytest.raises(BadRequest):
            check_key(bad)


def _ch(rev: int, key: str) -> Change:
    return Change(rev, "ADDED", key, "{}", None, 0)


def test_hub_routes_by_prefix_and_overflows_instead_of_growing():
    async def main():
        hub = Hub(max_buffer=2)
        a, b = hub.subscribe("/r/a/"), hub.subscribe("/r/")
        hub.publish([_ch(1, "/r/a/x"), _ch(2, "/r/b/y")])
        assert [c.revision for c in await a.next_batch()] == [1]
        assert [c.revision for c in await b.next_batch()] == [1, 2]
        hub.publish([_ch(3, "/r/a/1"), _ch(4, "/r/a/2"), _ch(5, "/r/a/3")])
        assert a.overflowed and await a.next_batch() == []      # caller must re-read history
        a.reset_overflow()
        hub.publish([_ch(6, "/r/a/4")])
        assert [c.revision for c in await a.next_batch()] == [6]
        hub.unsubscribe(b)
        hub.publish([_ch(7, "/r/a/5")])
        assert len(hub) == 1
        hub.close()
        assert await a.next_batch() == [_ch(7, "/r/a/5")]       # buffered changes still drain
        assert await a.next_batch() is None                      # then the end
    asyncio.run(main())
