"""Shared decoding of etcd watch events: one decode per change for all shared watchers,
distinct changes (revision, delete vs put) never confused, and the cache stays bounded."""

from __future__ import annotations

import json

from netemu.store.base import ADDED, DELETED, MODIFIED
from netemu.store.etcd import SharedEvents, b64


def _kv(key: str, obj: dict, create: int, mod: int) -> dict:
    return {"key": b64(key), "value": b64(json.dumps(obj)), "create_revision": str(create),
            "mod_revision": str(mod)}


def test_one_decode_per_change_and_changes_kept_apart():
    shared = SharedEvents(size=8)
    put = {"kv": _kv("/registry/pods/d/a", {"metadata": {"name": "a"}}, 5, 5)}
    first, again = shared.get(put), shared.get(json.loads(json.dumps(put)))   # another stream's copy
    assert first is again and first.type == ADDED and first.object["metadata"]["resourceVersion"] == "5"
    upd = {"kv": _kv("/registry/pods/d/a", {"metadata": {"name": "a"}, "x": 1}, 5, 6),
           "prev_kv": put["kv"]}
    modified = shared.get(upd)
    assert modified is not first and modified.type == MODIFIED and modified.prev_object["metadata"]["name"] == "a"
    gone = shared.get({"type": "DELETE", "kv": {"key": b64("/registry/pods/d/a"), "mod_revision": "6"},
                       "prev_kv": upd["kv"]})
    assert gone.type == DELETED and gone is not modified


def test_cache_is_bounded():
    shared = SharedEvents(size=3)
    events = [{"kv": _kv(f"/registry/pods/d/p{i}", {"metadata": {"name": f"p{i}"}}, i, i)} for i in range(1, 8)]
    decoded = [shared.get(ev) for ev in events]
    assert len(shared._events) == 3
    assert shared.get(events[-1]) is decoded[-1]          # recent: shared
    assert shared.get(events[0]) is not decoded[0]        # evicted: decoded again, equal
    assert shared.get(events[0]).object == decoded[0].object
