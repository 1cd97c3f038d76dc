"""``--topo FILE.py:Class[,args]`` loading, mn --custom style, and its one-line errors."""

from __future__ import annotations

import pytest

pytest.importorskip("mininet.topo")

from netemu.emulator.topoload import TopologyError, load_topo, split_spec  # noqa: E402


def test_split_spec_parses_args_like_mn():
    assert split_spec("topologies/cluster.py:ClusterTopo,3,cpu=4") == \
        ("topologies/cluster.py", "ClusterTopo", [3], {"cpu": 4})
    assert split_spec("/abs/x.py:T") == ("/abs/x.py", "T", [], {})


@pytest.mark.parametrize("spec", ["cluster.py", "cluster.py:", ":ClusterTopo"])
def test_malformed_specs(spec):
    with pytest.raises(TopologyError, match="FILE.py:Class"):
        split_spec(spec)


def test_loads_by_class_name_or_topos_key_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load_topo("topologies/cluster.py:ClusterTopo,4").hosts()) == 5
    assert len(load_topo("topologies/zones.py:zones,per_zone=3").hosts()) == 7


def test_user_file(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("from mininet.topo import Topo\n"
                 "class Mine(Topo):\n"
                 "    def build(self, n=1):\n"
                 "        s = self.addSwitch('s1')\n"
                 "        for i in range(n + 1): self.addLink(self.addHost(f'h{i}'), s)\n"
                 "def not_a_topo(): return 42\n")
    assert len(load_topo(f"{f}:Mine,2").hosts()) == 3
    with pytest.raises(TopologyError, match="did not make a mininet Topo"):
        load_topo(f"{f}:not_a_topo")


@pytest.mark.parametrize("spec, message", [
    ("topologies/nope.py:X", "not found"),
    ("topologies/cluster.py:Nope", "no topology 'Nope'.*ClusterTopo"),
    ("topologies/cluster.py:ClusterTopo,bogus=1", "unexpected keyword"),
    ("topologies/cluster.py:ClusterTopo,x", "failed: ValueError"),
])
def test_unknown_files_classes_and_bad_args_are_clear(spec, message):
    with pytest.raises(TopologyError, match=message):
        load_topo(spec)


def test_a_broken_file_is_one_line(tmp_path):
    f = tmp_path / "broken.py"
    f.write_text("def (:\n")
    with pytest.raises(TopologyError, match="loading .* failed: SyntaxError"):
        load_topo(f"{f}:T")
