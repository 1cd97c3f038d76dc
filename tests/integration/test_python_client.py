"""The official python ``kubernetes`` client against a real ``netemu apiserver`` process.

create / list / watch (resuming from a resourceVersion) / delete for pods and services, with
the kubeconfig the server wrote, unchanged.
"""

from __future__ import annotations

import pytest

from netemu.testing.apiserver_process import ApiServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture
def core(tmp_path):
    srv = ApiServerProcess(tmp_path / "state").start()
    api_client = config.new_client_from_config(config_file=str(srv.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()
        assert srv.stop() == 0


def pod(name: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels={"app": "py"}),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))


def service(name: str) -> client.V1Service:
    return client.V1Service(metadata=client.V1ObjectMeta(name=name),
                            spec=client.V1ServiceSpec(selector={"app": "py"},
                                                      ports=[client.V1ServicePort(port=80, target_port=8080)]))


def test_pods_create_list_watch_delete(core):
    created = core.create_namespaced_pod("default", pod("py-1"))
    assert created.metadata.uid and created.status.phase == "Pending"
    listed = core.list_namespaced_pod("default", label_selector="app=py")
    assert [p.metadata.name for p in listed.items] == ["py-1"]
    start = listed.metadata.resource_version

    core.create_namespaced_pod("default", pod("py-2"))
    core.delete_namespaced_pod("py-1", "default")          # not scheduled: removed at once

    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    assert events == [("ADDED", "py-2"), ("DELETED", "py-1")]

    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("py-1", "default")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", pod("py-2"))
    assert exc.value.status == 409
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces().items] == ["py-2"]


def test_services_create_list_watch_delete(core):
    svc = core.create_namespaced_service("default", service("py-svc"))
    assert svc.spec.cluster_ip.startswith("10.") and svc.spec.ports[0].protocol == "TCP"
    listed = core.list_namespaced_service("default")
    assert sorted(s.metadata.name for s in listed.items) == ["kubernetes", "py-svc"]
    start = listed.metadata.resource_version
    svc.metadata.labels = {"changed": "yes"}
    core.replace_namespaced_service("py-svc", "default", svc)
    core.delete_namespaced_service("py-svc", "default")
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_service, "default", resource_version=start, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            w.stop()
    assert events == [("MODIFIED", "py-svc"), ("DELETED", "py-svc")]
    assert [s.metadata.name for s in core.list_namespaced_service("default").items] == ["kubernetes"]
