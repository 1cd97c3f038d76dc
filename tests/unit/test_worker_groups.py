"""scripts/test's parallel host run: which tests share a worker (tests/conftest.py worker_group).
A module's tests stay together (a module-scoped cluster is made once), and the Service-behaviour
suite's tests share one worker per proxy mode (one session cluster per mode, its disruptive
tests last on it)."""

from __future__ import annotations

from tests.conftest import worker_group

SUITE = "tests/e2e/service_behaviours"


def test_a_module_is_one_group():
    assert worker_group("tests/unit/test_x.py::test_a") == "tests/unit/test_x.py"
    assert worker_group("tests/unit/test_x.py::test_b[1-0]") == "tests/unit/test_x.py"
    assert worker_group("tests/e2e/test_dns.py::TestX::test_y") == "tests/e2e/test_dns.py"


def test_the_behaviour_suite_groups_by_proxy_mode_across_its_files():
    assert worker_group(f"{SUITE}/test_affinity.py::test_a[iptables]") == "service-behaviours-iptables"
    assert worker_group(f"{SUITE}/test_restarts.py::test_b[iptables]") == "service-behaviours-iptables"
    assert worker_group(f"{SUITE}/test_types.py::test_c[nftables-ClusterIP]") == "service-behaviours-nftables"
    assert worker_group(f"{SUITE}/test_types.py::test_c[ClusterIP-ipvs]") == "service-behaviours-ipvs"


def test_a_behaviour_without_a_mode_stays_with_its_module():
    assert worker_group(f"{SUITE}/test_jig.py::test_x") == f"{SUITE}/test_jig.py"
    assert worker_group(f"{SUITE}/test_jig.py::test_x[other]") == f"{SUITE}/test_jig.py"
