"""The labels that hide a Service from kube-proxy (test/e2e/network/service.go, kubernetes v1.32).

cmd/kube-proxy lists and watches Services and EndpointSlices through the selector
``!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless``: a Service with
either label is someone else's to proxy (or nobody's), and adding or removing the label later
takes it out of, or puts it back into, the node's rules.
"""

from __future__ import annotations

import pytest

from tests.e2e.service_behaviours.traffic import serve_hostname_down, serve_hostname_up

pytestmark = [pytest.mark.root, pytest.mark.kubectl, pytest.mark.slow]


def _toggle(jig, clients, label: dict, prefix: str) -> None:
    """The shared body of both upstream tests: one Service born labelled, one toggled."""
    disabled, toggled = f"{prefix}", f"{prefix}-toggled"
    ports = [{"port": 80, "targetPort": 9376, "protocol": "TCP"}]
    off = jig.create_service(jig.service(disabled, {"name": disabled}, ports, labels=label))
    jig.replicas(disabled, 3, {"name": disabled})
    on = jig.create_service(jig.service(toggled, {"name": toggled}, ports))
    names = sorted(p["metadata"]["name"] for p in jig.replicas(toggled, 3, {"name": toggled}))
    node = jig.workers()[0]
    host, pod = jig.node_client(node), clients[node]
    off_ip, on_ip = off["spec"]["clusterIP"], on["spec"]["clusterIP"]
    assert off_ip, "the labelled Service still gets a ClusterIP: only kube-proxy ignores it"

    serve_hostname_up([host, pod], on_ip, 80, names)
    serve_hostname_down(host, off_ip, 80)
    jig.update_service(toggled, lambda s: s["metadata"].update(labels=label))
    serve_hostname_down(host, on_ip, 80)
    jig.update_service(toggled, lambda s: s["metadata"].update(labels=None))
    serve_hostname_up([host, pod], on_ip, 80, names)
    serve_hostname_down(host, off_ip, 80)


@pytest.mark.vm_subset
def test_should_implement_service_kubernetes_io_service_proxy_name(jig, clients):
    """[sig-network] Services should implement service.kubernetes.io/service-proxy-name

    Upstream: service.go. service-proxy-name=foo-bar: never proxied; the label added to a
    working Service takes it down, removed brings it back.
    """
    _toggle(jig, clients, {"service.kubernetes.io/service-proxy-name": "foo-bar"}, "service-proxy")


@pytest.mark.vm_subset
def test_should_implement_service_kubernetes_io_headless(jig, clients):
    """[sig-network] Services should implement service.kubernetes.io/headless

    Upstream: service.go. The same for the headless label (value ""), even on a Service
    that has a ClusterIP (the issue-19 bug: it was proxied).
    """
    _toggle(jig, clients, {"service.kubernetes.io/headless": ""}, "service-headless")
