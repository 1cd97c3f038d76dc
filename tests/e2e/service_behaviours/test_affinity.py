"""Upstream's session-affinity tests (test/e2e/network/service.go, kubernetes v1.32).

checkAffinity as upstream: batches of AffinityConfirmCount+1 new connections from an exec pod;
affinity holds when the last 15 answers all came from one pod, and "does not hold" when they
did not. The poll interval is 2 s instead of upstream's 30 s, and the timeout test uses a 2 s
timeoutSeconds (waiting 4 s between tries) instead of 125 s (waiting 130 s): the rule is the
same, the wait is not CI's to pay.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.checks import check_service_reachability
from tests.e2e.service_behaviours.jig import eventually, settle
from tests.e2e.service_behaviours.traffic import answers

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]

CONFIRM = 15          # upstream AffinityConfirmCount
TIMEOUT_SECONDS = 2   # upstream SessionAffinityTimeout is 125
EXPIRY_WAIT = TIMEOUT_SECONDS + 2   # upstream waits timeout + 5 s (slack for an IPVS quirk)


def _start(jig, name: str, type_: str, affinity_timeout: int | None = None):
    """StartServeHostnameService with ClientIP affinity: 3 serve-hostname pods behind port 80."""
    config = {"clientIP": {"timeoutSeconds": affinity_timeout}} if affinity_timeout else None
    spec = {"sessionAffinity": "ClientIP", **({"sessionAffinityConfig": config} if config else {})}
    jig.create_service(jig.service(name, {"name": name}, [{"port": 80, "targetPort": 9376, "protocol": "TCP"}],
                                   type_, **spec))
    jig.replicas(name, 3, {"name": name})
    svc = jig.get("service", name)
    client = jig.exec_pod("execpod-affinity")
    check_service_reachability(jig, svc, client)
    if type_ == "NodePort":
        return svc, client, jig.node_ip(jig.workers()[0]), svc["spec"]["ports"][0]["nodePort"]
    return svc, client, svc["spec"]["clusterIP"], 80


def check_affinity(client, ip: str, port: int, should_hold: bool, timeout: float = 60) -> list[str]:
    """upstream checkAffinity: True once the trace shows affinity holding (or not) as wanted."""
    trace: list[str] = []

    def probe():
        trace.extend(a for a in answers(client, ip, port, CONFIRM + 1, timeout=2) if a)
        if len(trace) < CONFIRM:
            return None
        holds = len(set(trace[-CONFIRM:])) == 1
        return trace if holds == should_hold else None
    return eventually(f"affinity {'holding' if should_hold else 'not holding'} on {ip}:{port} (trace {trace})",
                      probe, timeout, 2)


def _affinity(jig, type_: str) -> None:
    """execAffinityTestForNonLBService."""
    _, client, ip, port = _start(jig, f"affinity-{type_.lower()}", type_)
    check_affinity(client, ip, port, True)


def _transition(jig, type_: str) -> None:
    """execAffinityTestForNonLBServiceWithTransition: ClientIP -> None -> ClientIP by update."""
    name = f"affinity-{type_.lower()}-transition"
    _, client, ip, port = _start(jig, name, type_)
    jig.update_service(name, lambda s: s["spec"].update(sessionAffinity="None"))
    check_affinity(client, ip, port, False)
    jig.update_service(name, lambda s: s["spec"].update(sessionAffinity="ClientIP"))
    check_affinity(client, ip, port, True)


def _timeout(jig, type_: str) -> None:
    """execAffinityTestForSessionAffinityTimeout: sticky until timeoutSeconds pass, then not."""
    _, client, ip, port = _start(jig, f"affinity-{type_.lower()}-timeout", type_, TIMEOUT_SECONDS)
    check_affinity(client, ip, port, True)
    hosts = set()
    for _ in range(10):
        (host,) = answers(client, ip, port, 1, timeout=2)
        if host:
            hosts.add(host)
            if len(hosts) > 1:
                return
        settle(EXPIRY_WAIT)
    pytest.fail(f"Session is sticky after reaching the timeout: {hosts}")


@pytest.mark.vm_subset
def test_should_have_session_affinity_work_for_service_with_type_clusterip(jig):
    """[sig-network] Services should have session affinity work for service with type clusterIP [LinuxOnly] [Conformance]

    Upstream: service.go. 3 pods behind a ClientIP-affinity ClusterIP: 15 consecutive new
    connections from one client all land on the same pod.
    """
    _affinity(jig, "ClusterIP")


def test_should_have_session_affinity_timeout_work_for_service_with_type_clusterip(jig):
    """[sig-network] Services should have session affinity timeout work for service with type clusterIP [LinuxOnly]

    Upstream: service.go. Sticky while connections keep coming; once timeoutSeconds pass
    without one, the next connection is balanced again (timeoutSeconds 2 here, 125 upstream).
    """
    _timeout(jig, "ClusterIP")


@pytest.mark.vm_subset
def test_should_be_able_to_switch_session_affinity_for_service_with_type_clusterip(jig):
    """[sig-network] Services should be able to switch session affinity for service with type clusterIP [LinuxOnly] [Conformance]

    Upstream: service.go. Updating sessionAffinity to None (the stored sessionAffinityConfig
    is cleared by defaulting, issue 19) spreads the connections; back to ClientIP they stick.
    """
    _transition(jig, "ClusterIP")


@pytest.mark.vm_subset
def test_should_have_session_affinity_work_for_nodeport_service(jig):
    """[sig-network] Services should have session affinity work for NodePort service [LinuxOnly] [Conformance]

    Upstream: service.go. The same through a node's InternalIP and the node port.
    """
    _affinity(jig, "NodePort")


def test_should_have_session_affinity_timeout_work_for_nodeport_service(jig):
    """[sig-network] Services should have session affinity timeout work for NodePort service [LinuxOnly]

    Upstream: service.go. The timeout through the node port (timeoutSeconds 2 here).
    """
    _timeout(jig, "NodePort")


@pytest.mark.vm_subset
def test_should_be_able_to_switch_session_affinity_for_nodeport_service(jig):
    """[sig-network] Services should be able to switch session affinity for NodePort service [LinuxOnly] [Conformance]

    Upstream: service.go. None spreads, ClientIP sticks again, through the node port.
    """
    _transition(jig, "NodePort")
