"""From a run's measurements to its folder (pure): per-second series on the experiment's clock,
CSV, PNG plots, report.html, compare; and the pure helpers of the effectful modules (kube-proxy
metrics -> sync events, the settle checks, tc argv for link shaping)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image

from netemu.emulator.shaping import Shape, qdisc_argv
from netemu.experiments import compare, plots, report, series, settle
from netemu.experiments.schema import Event, Phase, Scenario, ClusterSpec
from netemu.experiments.scrape import Sample, sample_of, sync_events
from netemu.experiments.timeline import EventRecord, Measured, PhaseRecord
from netemu.traffic.result import Second, Tally
from netemu.traffic.spec import LoadSpec, Target

PNG = b"\x89PNG\r\n\x1a\n"


def result(seconds: list[dict]):
    tally = Tally()
    for i, s in enumerate(seconds):
        tally.add({"second": i, "ok": s.get("ok", 0), "errors": s.get("errors", {}), "endpoints": s.get("endpoints", {}),
                   "latency_us": [1000] * s.get("ok", 0), "connections": s.get("ok", 0)})
    return tally.result(Target("10.96.0.10", 80, "svc/web:80"), LoadSpec(duration=len(seconds)), float(len(seconds)),
                        "duration", {}, ["a", "b"])


def measured() -> tuple[Measured, Scenario]:
    spec = LoadSpec(duration=4)
    ph = Phase("load", "client", "svc/web:80", 0.0, spec)
    ev = Event(2.0, "scale", {"deployment": "web", "replicas": 3, "namespace": "default", "_refs": [], "_needs": []},
               True, 9)
    scenario = Scenario("demo", "a test", 5.0, 1, ClusterSpec(), (), (ph,), (ev,), "demo.yaml")
    rec = PhaseRecord(ph, start=0.6, end=4.6, result=result([
        {"ok": 10, "endpoints": {"a": 5, "b": 5}}, {"ok": 8, "endpoints": {"a": 8}, "errors": {"refused": 2}},
        {"ok": 9, "endpoints": {"a": 3, "b": 3, "c": 3}}, {"ok": 9, "endpoints": {"a": 3, "b": 3, "c": 3}}]))
    erec = EventRecord(0, ev, start=2.0, end=3.1, waited=1.1, details={"replicas": 3})
    syncs = [{"node": "worker", "time": 1000.0 + 2.5, "syncs": 1, "duration": 0.02, "rules": 40,
              "programming_mean": None}]
    return Measured(1000.0, 5.2, [rec], [erec], syncs, {}, 0.4, []), scenario


def test_series_place_each_phase_second_on_the_experiment_clock(tmp_path):
    m, scenario = measured()
    data = series.build(m, scenario)
    rows = data["seconds"]
    assert [r["ok"] for r in rows[:6]] == [0, 10, 8, 9, 9, 0]          # phase released at 0.6 s
    assert rows[2]["errors"] == {"refused": 2} and rows[2]["error_count"] == 2
    assert rows[3]["share"] == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    assert rows[1]["phases"]["load"]["latency"]["p50"] == 0.001
    assert rows[2]["syncs"] == {"worker": 1} and rows[2]["sync_seconds"] == {"worker": 0.02}
    s = data["summary"]
    assert (s["ok"], s["error_count"], s["shift"], s["seed"]) == (36, 2, 1.1, 1)
    assert "endpoint counts" in s["varies"]
    assert data["events"][0]["label"] == "scale web to 3" and "_refs" not in data["events"][0]["params"]
    assert series.error_window(rows, 2.0) == {"first": 2, "last": 2, "seconds": 1, "errors": 2, "later": 0}
    burst = [{"t": t, "error_count": n} for t, n in enumerate([0, 0, 3, 4, 2, 0, 0, 5, 0])]
    assert series.error_window(burst, 1.5) == {"first": 2, "last": 4, "seconds": 3, "errors": 9, "later": 5}
    files = series.write(data, tmp_path)
    assert set(files) >= {"series.json", "series.csv", "events.json", "summary.json"}
    with open(tmp_path / "series.csv") as f:
        table = list(csv.DictReader(f))
    assert table[2]["error:refused"] == "2" and table[1]["endpoint:a"] == "5" and table[1]["load:ok"] == "10"


def test_plots_report_and_compare_are_valid(tmp_path):
    m, scenario = measured()
    folders = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        data = series.build(m, scenario)
        series.write(data, folder)
        images = plots.make(data, folder, name)
        for image in images:
            raw = (folder / image).read_bytes()
            assert raw.startswith(PNG)
            assert matplotlib.image.imread(folder / image).shape[0] > 100       # decodes whole
        page = report.write(folder, data, scenario, images, ["a note <b>"]).read_text()
        assert all(f'src="{i}"' in page for i in images) and "a note &lt;b&gt;" in page
        assert report.LOADED_SCRIPT in page and "scale web to 3" in page
        folders.append(folder)
    out = compare.write(tmp_path / "cmp", folders, "demo")
    page = out.read_text()
    assert 'src="compare.png"' in page and "../one/report.html" in page
    assert (tmp_path / "cmp" / "compare.png").read_bytes().startswith(PNG)


def test_compare_refuses_a_folder_that_is_not_a_result(tmp_path):
    import pytest
    with pytest.raises(compare.CompareError, match="not an experiment result folder"):
        compare.load(tmp_path)


METRICS = """\
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} %d
kubeproxy_sync_proxy_rules_duration_seconds_count %d
kubeproxy_sync_proxy_rules_duration_seconds_sum %f
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds %f
# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_pending gauge
kubeproxy_sync_proxy_rules_endpoint_changes_pending %d
# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge
kubeproxy_sync_proxy_rules_iptables_total{table="nat"} 30
kubeproxy_sync_proxy_rules_iptables_total{table="filter"} 4
"""


def test_metrics_pages_become_sync_events():
    pages = [(1, 0.01, 100.0, 0), (1, 0.01, 100.0, 2), (3, 0.07, 105.0, 0)]
    samples = [sample_of(METRICS % (c, c, s, ts, p), 100.0 + i) for i, (c, s, ts, p) in enumerate(pages)]
    assert (samples[1].pending, samples[0].rules, samples[2].syncs) == (2, 34, 3)
    (ev,) = sync_events("worker", samples + [Sample(110.0, False)])
    assert ev["node"] == "worker" and ev["time"] == 105.0 and ev["syncs"] == 2
    assert abs(ev["duration"] - 0.03) < 1e-9 and ev["rules"] == 34


def pod(name, ip, ready=True, labels=None, deleting=False):
    meta = {"name": name, "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "now"
    return {"metadata": meta, "status": {"phase": "Running", "podIP": ip,
                                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_settled_means_rolled_out_and_endpoints_listing_exactly_the_ready_pods():
    dep = {"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
           "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2, "replicas": 2}}
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")]
    assert settle.deployment_done(dep, pods) is None
    assert "terminating" in settle.deployment_done(dep, pods + [pod("c", "10.0.0.3", deleting=True)])
    assert "readyReplicas 1/2" in settle.deployment_done({**dep, "status": {**dep["status"], "readyReplicas": 1}}, pods)
    svc = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
    sl = {"metadata": {"labels": {"kubernetes.io/service-name": "web"}},
          "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                        {"addresses": ["10.0.0.9"], "conditions": {"ready": False}}]}
    assert "endpoints 1, ready pods 2" in settle.endpoints_match(svc, [sl], pods)
    sl["endpoints"].append({"addresses": ["10.0.0.2"]})
    assert settle.endpoints_match(svc, [sl], pods) is None


def test_link_shaping_argv():
    assert qdisc_argv("eth0", Shape(bw=10)) == ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "tbf",
                                                "rate", "10mbit", "burst", "16384", "latency", "100ms"]
    assert qdisc_argv("eth0", Shape(delay=0.02, jitter=0.005, loss=1, bw=100)) == [
        "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "netem", "delay", "20ms", "5ms",
        "loss", "1%", "rate", "100mbit"]
    assert qdisc_argv("eth0", Shape()) == ["tc", "qdisc", "del", "dev", "eth0", "root"]


def test_second_share_is_what_series_uses():
    assert Second(0, ok=4, endpoints={"a": 1, "b": 3}).share() == {"a": 0.25, "b": 0.75}
    assert json.loads(json.dumps(result([{"ok": 1, "endpoints": {"a": 1}}]).to_dict(), default=str))["ok"] == 1


def test_a_phase_due_with_a_waiting_event_starts_after_it_has_settled():
    import asyncio
    import time as clock_time

    from netemu.experiments.timeline import Clock

    async def go():
        settled = asyncio.Event()
        clock = Clock(clock_time.monotonic(), clock_time.time(), holds=[(0.0, settled)])
        phase = asyncio.ensure_future(clock.until(0.0))
        event = asyncio.ensure_future(clock.until(0.0, held=False))     # the event itself is not held
        await asyncio.sleep(0.1)
        assert event.done() and not phase.done()
        settled.set()
        await asyncio.wait_for(phase, 1)
        later = asyncio.ensure_future(clock.until(-1.0))                 # due before the hold: not held
        await asyncio.wait_for(later, 1)
    asyncio.run(go())
