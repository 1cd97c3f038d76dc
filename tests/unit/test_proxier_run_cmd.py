"""`netemu proxy run` rejects bad flags with one clear line (exit 2) before touching anything."""

from __future__ import annotations

import pytest

from netemu.cli.main import main

BASE = ["proxy", "run", "--kubeconfig", "/nonexistent", "--hostname-override", "n1"]


@pytest.mark.parametrize("extra, message", [
    (["--node-ip", "300.1.1.1"], "300.1.1.1"),
    (["--cluster-cidr", "10.244.0.0/33"], "10.244.0.0/33"),
    (["--metrics-bind-address", "localhost"], "HOST:PORT"),
    (["--min-sync-period", "5", "--sync-period", "1"], "--min-sync-period"),
])
def test_bad_flags_are_usage_errors(extra, message, capsys):
    assert main(BASE + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("netemu: error:") and message in err and "Traceback" not in err
