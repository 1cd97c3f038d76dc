"""`netemu trace -f FILE`: answers, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import io
import json

import pytest

from netemu.cli.main import main
from tests.unit.test_trace_fixtures import LOAD_BALANCER, UPSTREAM_OVERALL


@pytest.fixture
def dump_file(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_text(UPSTREAM_OVERALL)
    return str(path)


def test_human_output(dump_file, capsys):
    assert main(["trace", "-f", dump_file, "--src", "10.0.0.2", "--dst", "172.30.0.44", "--dport", "80",
                 "--node-ip", "192.168.0.2"]) == 0
    out = capsys.readouterr().out
    assert " 50.00%  DNAT -> 10.180.0.4:80" in out and " 50.00%  DNAT -> 10.180.0.5:80" in out
    assert "nat:KUBE-SVC-4SW47YFZTEDKD3PK" in out


def test_json_output_and_origin(dump_file, capsys):
    assert main(["trace", "-f", dump_file, "--src", "192.168.0.2", "--dst", "192.168.0.2", "--dport", "3003",
                 "--node-ip", "192.168.0.2", "--from", "node", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hook"] == "OUTPUT" and data["origin"] == "node"
    (o,) = data["outcomes"]
    assert o["destination"] == "10.180.0.3:80" and o["masquerade"] is True


def test_stdin_and_ipset_option(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(LOAD_BALANCER))
    assert main(["trace", "-f", "-", "--src", "203.0.113.130", "--dst", "1.2.3.4", "--dport", "80",
                 "--ipset", "UNUSED=10.0.0.0/8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["verdict"] for o in data["outcomes"]] == ["DROP"]


@pytest.mark.parametrize("argv,msg", [
    (["--src", "10.0.0.x", "--dst", "1.2.3.4", "--dport", "80"], "source '10.0.0.x' is not an IP address"),
    (["--src", "10.0.0.1", "--dst", "1.2.3.4", "--dport", "70000"], "out of range"),
    (["--src", "10.0.0.1", "--dst", "1.2.3.4", "--dport", "80", "--netns", "x"], "--netns and --backend go with --live"),
    (["--src", "10.0.0.1", "--dst", "1.2.3.4", "--dport", "80", "--ipset", "S"], "--ipset wants NAME=CIDR"),
    (["--src", "10.0.0.1", "--dst", "1.2.3.4", "--dport", "80", "--ipset", "S=nope"], "'nope' is not an address"),
])
def test_bad_input_is_one_line_exit_2(dump_file, capsys, argv, msg):
    assert main(["trace", "-f", dump_file, *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_unreadable_and_empty_files(tmp_path, capsys):
    assert main(["trace", "-f", str(tmp_path / "missing"), "--src", "1.1.1.1", "--dst", "2.2.2.2",
                 "--dport", "1"]) == 2
    assert "cannot read" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("just words\n")
    assert main(["trace", "-f", str(empty), "--src", "1.1.1.1", "--dst", "2.2.2.2", "--dport", "1"]) == 2
    assert "holds no table" in capsys.readouterr().err
