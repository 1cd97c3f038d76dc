"""Applying the cluster add-ons when the API server answers slowly (netemu up in the lab VM)."""

import asyncio

import pytest

from netemu.api import errors
from netemu.emulator import addons


class _SlowApi:
    """Creates: the first ``late`` of them are stored but answered too late (a TimeoutError)."""

    def __init__(self, late: int, stored_anyway: bool = True):
        self.late, self.stored_anyway = late, stored_anyway
        self.stored: set[tuple] = set()
        self.calls = 0

    async def create(self, rt, obj, ns):
        self.calls += 1
        key = (obj["kind"], ns, obj["metadata"]["name"])
        if key in self.stored:
            raise errors.AlreadyExists(f"{key} exists")
        if self.late > 0:
            self.late -= 1
            if self.stored_anyway:
                self.stored.add(key)
            raise TimeoutError()
        self.stored.add(key)
        return obj


def test_a_create_answered_too_late_is_sent_again_and_every_object_exists():
    objects = addons.manifest("coredns")
    api = _SlowApi(late=2)
    asyncio.run(addons.apply(api, ("coredns",)))
    assert {(k, n) for k, _ns, n in api.stored} == {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert api.calls == len(objects) + 2       # the two late ones were sent again (AlreadyExists)


def test_an_api_that_never_answers_is_an_addon_error_naming_the_object():
    api = _SlowApi(late=10**6, stored_anyway=False)
    with pytest.raises(addons.AddonError, match=r"creating \w+/\S+ of add-on coredns: no answer .* 3 attempts"):
        asyncio.run(addons.apply(api, ("coredns",)))
    assert api.calls == addons.CREATE_ATTEMPTS
