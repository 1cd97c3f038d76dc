"""Traffic requests that cannot run are refused with a message naming the option, before any
socket; a spec split over worker processes adds up to the spec."""

from __future__ import annotations

import pytest

from netemu.traffic.result import check_output
from netemu.traffic.spec import Job, LoadSpec, SpecError, Target


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"),
    ({"requests": 5, "duration": 2}, "exactly one of"),
    ({"requests": 5, "rate": 0}, "--rate must be > 0"),
    ({"requests": 5, "rate": -3}, "--rate must be > 0"),
    ({"duration": 0}, "--duration must be > 0"),
    ({"requests": 0}, "--requests must be a whole number"),
    ({"connections": 5, "concurrency": 0}, "--concurrency"),
    ({"requests": 5, "proto": "sctp"}, "--proto"),
    ({"requests": 5, "per_connection": 3}, "needs --keepalive"),
    ({"requests": 5, "proto": "tcp", "keepalive": True}, "raw tcp"),
    ({"connections": 5, "keepalive": True}, "--per-connection"),
    ({"requests": 5, "payload": 2 * 1024 * 1024}, "--payload"),
    ({"requests": 5, "proto": "udp", "payload": 70_000}, "--payload"),
    ({"requests": 5, "path": "hostname"}, "--path"),
    ({"requests": 5, "arrival": "poisson"}, "needs --rate"),
    ({"requests": 5, "proto": "tcp", "clientip_probes": 2}, "clientip"),
    ({"requests": 2, "workers": 3}, "--workers"),
    ({"requests": 5, "timeout": 0}, "--timeout"),
])
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(SpecError, match=message):
        LoadSpec(**kwargs).check()


@pytest.mark.parametrize("target, message", [
    (Target("10.96.0.300", 80), "not an IP"), (Target("10.96.0.3", 0), "not a port"),
    (Target("10.96.0.3", 70000), "not a port")])
def test_bad_targets(target, message):
    with pytest.raises(SpecError, match=message):
        target.check()


def test_split_adds_up():
    spec = LoadSpec(requests=10, rate=100.0, concurrency=5, seed=7, clientip_probes=4).check()
    parts = spec.split(3)
    assert sum(p.requests for p in parts) == 10 and [p.requests for p in parts] == [4, 3, 3]
    assert sum(p.rate for p in parts) == pytest.approx(100.0)
    assert sum(p.concurrency for p in parts) == 5
    assert len({p.seed for p in parts}) == 3
    assert [p.clientip_probes for p in parts] == [4, 0, 0]
    assert all(p.workers == 1 for p in parts)
    timed = LoadSpec(duration=3.0).split(2)
    assert all(p.duration == 3.0 and p.requests is None for p in timed)


def test_job_round_trips_as_json():
    job = Job(Target("10.96.0.10", 80, "svc/web"), LoadSpec(requests=3, keepalive=True), ("10.96.0.10",))
    assert Job.from_dict(job.to_dict()) == job


def test_output_files_checked_before_the_run(tmp_path):
    check_output(str(tmp_path / "r.json"), (".json", ".csv"))
    check_output(None, (".json",))
    with pytest.raises(SpecError, match="must end in"):
        check_output(str(tmp_path / "r.txt"), (".json", ".csv"))
    with pytest.raises(SpecError, match="no directory"):
        check_output(str(tmp_path / "missing" / "r.json"), (".json",))
    (tmp_path / "d.json").mkdir()
    with pytest.raises(SpecError, match="is a directory"):
        check_output(str(tmp_path / "d.json"), (".json",))


def test_probe_sources_stay_inside_the_emulation():
    from netemu.traffic.probe import Probe
    ranges = ["10.244.0.0/16", "172.31.40.0/24"]
    Probe("tcp", "10.244.3.9", 2000, "10.96.0.1", 443).check(ranges)
    Probe("udp", None, 2000, "10.96.0.10", 53).check(ranges)
    for probe, message in ((Probe("tcp", "8.8.8.8", 2000, "10.96.0.1", 443), "outside the emulated ranges"),
                           (Probe("tcp", "nope", 2000, "10.96.0.1", 443), "not an IP address"),
                           (Probe("icmp", None, 2000, "10.96.0.1", 443), "--syn"),
                           (Probe("tcp", None, 0, "10.96.0.1", 443), "1-65535")):
        with pytest.raises(SpecError, match=message):
            probe.check(ranges)
