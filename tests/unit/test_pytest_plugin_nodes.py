"""NETEMU_CLUSTER_NODES: every netemu_cluster fixture at least that many workers (the e2e
suite on a bigger cluster, issue 17); a value that is not a number is refused by name."""

import pytest

from netemu.testing.pytest_plugin import min_nodes


def test_unset_is_no_minimum(monkeypatch):
    monkeypatch.delenv("NETEMU_CLUSTER_NODES", raising=False)
    assert min_nodes() == 0


def test_a_number_is_the_minimum(monkeypatch):
    monkeypatch.setenv("NETEMU_CLUSTER_NODES", " 10 ")
    assert min_nodes() == 10


def test_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv("NETEMU_CLUSTER_NODES", "ten")
    with pytest.raises(pytest.UsageError, match="NETEMU_CLUSTER_NODES='ten'"):
        min_nodes()
