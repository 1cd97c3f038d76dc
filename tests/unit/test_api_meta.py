"""Metadata helpers: timestamps, uids, owner and controller references, JSON copies."""

import datetime as dt

from netemu.api import meta


def owner(uid="u1", kind="ReplicaSet"):
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "rs", "namespace": "d", "uid": uid}}


def test_timestamps_are_rfc3339_seconds_utc():
    t = dt.datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert meta.now_rfc3339(t) == "2026-11-27T08:00:00Z"
    assert meta.parse_rfc3339("2026-11-27T08:00:00Z") == dt.datetime(2026, 11, 27, 8, tzinfo=dt.timezone.utc)
    assert meta.parse_rfc3339("2026-11-27T08:00:00.5+00:00").microsecond == 500000
    assert meta.add_seconds("2026-11-27T08:00:00Z", 30) == "2026-11-27T08:00:30Z"
    assert len(meta.now_rfc3339()) == 20


def test_uids_are_unique_uuid_strings():
    uids = {meta.new_uid() for _ in range(100)}
    assert len(uids) == 100 and all(len(u) == 36 and u.count("-") == 4 for u in uids)


def test_controller_ref_and_ownership():
    pod = {"metadata": {"name": "p"}}
    ref = meta.new_controller_ref(owner())
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
                   "controller": True, "blockOwnerDeletion": True}
    meta.set_owner_reference(pod, meta.owner_reference(owner("u2", "Deployment")))
    meta.set_owner_reference(pod, ref)
    assert meta.controller_ref(pod) == ref and meta.is_controlled_by(pod, owner())
    assert not meta.is_controlled_by(pod, owner("u2"))
    meta.set_owner_reference(pod, dict(ref, name="renamed"))  # same uid replaces
    assert len(meta.owner_references(pod)) == 2
    assert meta.remove_owner_reference(pod, "u1") and not meta.remove_owner_reference(pod, "u1")
    assert meta.controller_ref(pod) is None
    assert meta.remove_owner_reference(pod, "u2") and "ownerReferences" not in pod["metadata"]


def test_readers_tolerate_missing_metadata():
    assert meta.name_of({}) == "" and meta.namespace_of({"metadata": None}) == ""
    assert meta.labels_of({}) == {} and meta.resource_version({"metadata": {"resourceVersion": "x"}}) == 0
    assert meta.namespaced_name({"metadata": {"name": "a", "namespace": "b"}}) == "b/a"
    assert meta.namespaced_name({"metadata": {"name": "n1"}}) == "n1"
    assert not meta.is_being_deleted({}) and meta.is_being_deleted({"metadata": {"deletionTimestamp": "t"}})


def test_json_copy_is_deep():
    src = {"a": [{"b": 1}, "s", None, True, 1.5], "c": {"d": []}}
    out = meta.json_copy(src)
    assert out == src
    out["a"][0]["b"] = 2
    out["c"]["d"].append(1)
    assert src == {"a": [{"b": 1}, "s", None, True, 1.5], "c": {"d": []}}
