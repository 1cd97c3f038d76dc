"""`netemu up`'s stage times and its registered count (pure parts of emulator/ready.py)."""

from netemu.emulator.ready import registered, stage_times

STAGES = ("hosts", "control-plane", "agents", "registering", "nodes")


def test_each_stage_lasts_until_the_next_one_starts():
    timings = {"network": 0.0, "hosts": 0.1, "control-plane": 1.5, "agents": 3.0, "registering": 3.2, "nodes": 5.0}
    assert stage_times(timings, STAGES, 6.0) == [("hosts", 1.4), ("control-plane", 1.5), ("agents", 0.2),
                                                 ("registering", 1.8), ("nodes", 1.0)]
    # a stage that never started (every node registered at the first look) is left out
    assert stage_times({"hosts": 0.0, "nodes": 2.0}, STAGES, 2.5) == [("hosts", 2.0), ("nodes", 0.5)]


def test_registered_counts_only_the_expected_nodes():
    nodes = [{"metadata": {"name": n}} for n in ("w1", "w2", "stranger")]
    assert registered(nodes, ["w1", "w2", "w3"]) == 2


def test_a_cluster_bigger_than_the_memory_is_refused_with_the_measured_numbers():
    from netemu.emulator import sizing
    per = sizing.PER_NODE_MB + sizing.API_PER_NODE_MB
    assert sizing.refusal(100, sizing.estimate_mb(100)) is None
    text = sizing.refusal(100, sizing.FIXED_MB + 40 * per + 1)
    assert text.startswith("--nodes 100 needs about") and "at most about 40 nodes fit" in text
    assert sizing.available_mb("MemTotal: 100 kB\nMemAvailable:    2048000 kB\n") == 2000.0
