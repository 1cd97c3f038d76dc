"""Random junk in valid objects and patches: only 4xx Status errors, never a crash (seeded)."""

import json
import random

import pytest

from netemu.api import errors, kinds, patch, strategy
from netemu.bench.api import deployment, service

NOW = "2026-11-27T08:00:00Z"
JUNK = [None, 0, -1, 1.5, True, "", "x y", "Z", [], {}, [None], {"a": None}, "None", 2 ** 40, ["a"], {"k": 1}]


def mutate(obj, rng):
    obj = json.loads(json.dumps(obj))
    slots = []

    def walk(x):
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in items:
            slots.append((x, k))
            walk(v)
    walk(obj)
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(slots)
        container[key] = rng.choice(JUNK)
    return obj


def expect_4xx(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except errors.StatusError as e:
        assert 400 <= e.code < 500, e.status()
        return None


@pytest.mark.parametrize("seed", range(4))
def test_mutated_objects_and_patches_fail_cleanly(seed):
    rng = random.Random(seed)
    for i in range(300):
        base = service(i) if i % 2 else deployment(i)
        rt = kinds.by_kind_name(base["kind"])
        out = expect_4xx(strategy.prepare_create, rt, mutate(base, rng), now=NOW)
        stored = strategy.prepare_create(rt, base, now=NOW)
        stored["metadata"]["resourceVersion"] = "1"
        expect_4xx(strategy.prepare_update, rt, stored, mutate(stored, rng))
        expect_4xx(strategy.prepare_update, rt, stored, mutate(stored, rng), subresource="status")
        expect_4xx(patch.strategic_merge_patch, stored, mutate(base, rng), base["kind"])
        expect_4xx(patch.merge_patch, stored, mutate(base, rng))
        if out is not None:
            assert out["metadata"]["uid"]
