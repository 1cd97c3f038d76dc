"""The README's main command, the cluster demo, end to end (fewer requests, own network)."""

from __future__ import annotations

import re

import pytest

from tests.e2e import _cluster as c

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_cluster_demo_counts_every_replica_shows_the_chain_and_cleans_up(tmp_path):
    state = tmp_path / "demo"
    proc = c.netemu("demo", "--state-dir", str(state), "--node-network", c.node_network(53),
                    "--requests", "90", "--timeout", "120", check=False, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    rows = re.findall(r"(hostnames-\S+)\s*\S\s*(worker\d*)\s*\S\s*(10\.244\.\d+\.\d+)\s*\S\s*(\d+)", out)
    assert len(rows) == 3, out
    assert sum(int(r[3]) for r in rows) == 90 and all(int(r[3]) > 0 for r in rows)
    client_node = re.search(r"client@(\S+)", out).group(1)
    assert client_node not in {r[1] for r in rows}                # the client is on a replica-free node
    assert re.search(r"-A KUBE-SVC-[A-Z0-9]{16} .*--probability 0\.333", out)
    assert out.count("DNAT --to-destination") == 3
    assert "netemu down" in out
    assert c.nothing_left(state, set()), c.leftovers(state, set())
