"""Resource metrics, pure and in-process: /proc parsing and process trees, the kubelet's
/metrics/resource text, and the API server's metrics.k8s.io built from two scrapes of it (the
kubelet answered by a fake fetch; the real kubelets are in tests/e2e/test_cluster.py)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from netemu.agent.kubelet import resourcemetrics
from netemu.agent.runtime import stats
from netemu.apiserver import metricsapi
from netemu.testing.apiserver import api_server

from tests.unit.test_apiserver_http import NODES, PODS, pod, raw


def test_parse_stat_with_a_hostile_command_name():
    line = "4242 (we) ird (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 30 12 5 3 20 0 1 0 100 1000000 250 0"
    st = stats.parse_stat(line)
    assert (st.pid, st.ppid, st.cpu_ticks, st.rss_pages) == (4242, 17, 30 + 12 + 5 + 3, 250)


def test_tree_usage_sums_a_process_and_its_descendants_only():
    procs = {p: stats.ProcStat(p, pp, ticks, pages)
             for p, pp, ticks, pages in [(1, 0, 1000, 1), (10, 1, 100, 10), (11, 10, 50, 5), (12, 11, 7, 2),
                                          (20, 1, 999, 99)]}
    use = stats.tree_usage(procs, 10, memory_of=lambda pid: None)
    assert use.cpu_ns == (100 + 50 + 7) * 1_000_000_000 // stats.CLK_TCK
    assert use.memory_bytes == (10 + 5 + 2) * stats.PAGE_SIZE
    shared = stats.tree_usage(procs, 10, memory_of=lambda pid: 1000 if pid == 11 else None)
    assert shared.memory_bytes == (10 + 2) * stats.PAGE_SIZE + 1000      # Pss where readable
    assert stats.tree_usage(procs, 99) is None


def test_this_process_is_measured_from_proc():
    import os
    use = stats.tree_usage(stats.snapshot(), os.getpid())
    assert use is not None and use.memory_bytes > 1_000_000 and use.cpu_ns > 0
    assert 0 < stats.pss_bytes(os.getpid()) <= stats.snapshot()[os.getpid()].rss_pages * stats.PAGE_SIZE


def _text(node_cpu_s: float, node_mem: int, web_cpu_s: float, at: float) -> str:
    node = stats.Usage(int(node_cpu_s * 1e9), node_mem)
    containers = [resourcemetrics.ContainerSample("default", "web", "c", int(web_cpu_s * 1e9), 5 * 1024 * 1024),
                  resourcemetrics.ContainerSample("default", 'we"ird', "c", 0, 0)]
    return resourcemetrics.render(node, containers, at)


def test_kubelet_text_is_what_the_api_server_reads():
    text = _text(12.5, 300 * 1024 * 1024, 2.0, 1700000000.25)
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert 'container_cpu_usage_seconds_total{container="c",namespace="default",pod="web"} 2.0 1700000000250' in text
    assert 'pod_memory_working_set_bytes{namespace="default",pod="web"} 5242880.0' in text
    assert text.rstrip().endswith("scrape_error 0")
    scrape = metricsapi.parse(text, 0)
    assert scrape.at == 1700000000.25 and scrape.node == (12.5, 300 * 1024 * 1024)
    assert scrape.containers[("default", "web", "c")] == (2.0, 5 * 1024 * 1024)
    assert ("default", 'we"ird', "c") in scrape.containers
    assert metricsapi.parse("garbage\nnode_cpu_usage_seconds_total x\n", 5).node is None


def test_usage_quantities_and_a_counter_that_went_back():
    assert metricsapi.usage(10.0, 10.5, 2.0, 2048 * 1024) == {"cpu": "250000000n", "memory": "2048Ki"}
    assert metricsapi.usage(10.0, 9.0, 1.0, 0)["cpu"] == "0n"


def test_metrics_api_serves_nodes_and_pods_from_two_scrapes(tmp_path, monkeypatch):
    monkeypatch.setattr(metricsapi, "MIN_WINDOW", 0.05)
    scrapes = []

    async def fetch(url: str) -> str:
        assert url == "http://172.31.9.2:10250/metrics/resource"
        n = len(scrapes)
        scrapes.append(url)
        return _text(10.0 + n * 0.5, 400 * 1024 * 1024, 1.0 + n * 0.25, 1700000000 + n)

    async def scenario(srv):
        srv.api.metrics_api.fetch = fetch
        node = {"metadata": {"name": "n1", "labels": {"zone": "a"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "172.31.9.2"}]}}
        await srv.client.create(NODES, node)
        web = await srv.client.create(PODS, pod("web", node="n1", app="web"))
        web["status"] = {"phase": "Running"}
        await srv.client.update_status(PODS, web)
        status, nodes = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/nodes")
        assert status == 200 and nodes["kind"] == "NodeMetricsList", nodes
        [n1] = nodes["items"]
        assert n1["metadata"]["name"] == "n1" and n1["metadata"]["labels"] == {"zone": "a"}
        assert n1["usage"] == {"cpu": "500000000n", "memory": f"{400 * 1024}Ki"} and n1["window"] == "1s"
        assert len(scrapes) == 2                      # no earlier scrape: two, MIN_WINDOW apart
        status, pods = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb")
        assert status == 200 and [p["metadata"]["name"] for p in pods["items"]] == ["web"], pods
        assert pods["items"][0]["containers"] == [{"name": "c", "usage": {"cpu": "250000000n", "memory": "5120Ki"}}]
        status, one = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web")
        assert status == 200 and one["kind"] == "PodMetrics"
        status, missing = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/nodes/nope")
        assert status == 404 and missing["message"] == 'nodemetrics.metrics.k8s.io "nope" not found'
        status, missing = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope")
        assert status == 404 and missing["message"] == 'podmetrics.metrics.k8s.io "default/nope" not found'
        status, _ = await raw(srv, "POST", "/apis/metrics.k8s.io/v1beta1/nodes", b"{}")
        assert status == 405
        status, groups = await raw(srv, "GET", "/apis")
        assert {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"} in [
            v for g in groups["groups"] for v in g["versions"]]

    async def main():
        async with api_server(tmp_path) as srv:
            await scenario(srv)
    asyncio.run(asyncio.wait_for(main(), 60))


def test_unreachable_kubelet_means_no_metrics(tmp_path):
    async def fetch(url: str) -> str:
        raise aiohttp.ClientConnectionError("connection refused")

    async def main():
        async with api_server(tmp_path) as srv:
            srv.api.metrics_api.fetch = fetch
            await srv.client.create(NODES, {"metadata": {"name": "n1"}, "status": {
                "addresses": [{"type": "InternalIP", "address": "172.31.9.2"}]}})
            status, doc = await raw(srv, "GET", "/apis/metrics.k8s.io/v1beta1/nodes")
            assert status == 200 and doc["items"] == [], json.dumps(doc)
    asyncio.run(asyncio.wait_for(main(), 60))


def test_apiservices_list_every_group_version_and_the_metrics_api(tmp_path):
    async def main():
        async with api_server(tmp_path) as srv:
            status, doc = await raw(srv, "GET", "/apis/apiregistration.k8s.io/v1/apiservices")
            assert status == 200 and doc["kind"] == "APIServiceList"
            names = [i["metadata"]["name"] for i in doc["items"]]
            assert {"v1.", "v1.apps", "v1beta1.metrics.k8s.io", "v1.apiregistration.k8s.io"} <= set(names)
            status, metrics = await raw(srv, "GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io")
            assert status == 200 and metrics["spec"]["service"] == {"namespace": "kube-system", "name": "metrics-server",
                                                                    "port": 443}
            assert metrics["status"]["conditions"][0]["status"] == "True"
            status, table = await raw(srv, "GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1.",
                                      headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
            assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Service", "Available", "Age"]
            assert table["rows"][0]["cells"][:3] == ["v1.", "Local", "True"]
            assert (await raw(srv, "GET", "/apis/apiregistration.k8s.io/v1/apiservices/v9.nope"))[0] == 404
            assert (await raw(srv, "DELETE", "/apis/apiregistration.k8s.io/v1/apiservices/v1."))[0] == 405
    asyncio.run(asyncio.wait_for(main(), 60))
