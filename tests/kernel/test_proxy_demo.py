"""`netemu proxy demo` end to end: traffic answered by every pod, and nothing left behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from netemu.cli.main import main

pytestmark = pytest.mark.root


def _our_netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mine = f"kp{os.getpid()}"  # netemu.testing.netnslab.Lab's prefix in this process
    return {line.split()[0] for line in out.splitlines() if line.startswith(mine)}


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_demo_spreads_requests_and_cleans_up(backend, capsys):
    before = _our_netns()
    assert main(["proxy", "demo", "--backend", backend, "--requests", "60"]) == 0
    out = capsys.readouterr().out
    for pod in ("web-0", "web-1", "web-2"):
        assert pod in out
    assert "-A KUBE-SVC-" in out and "--probability 0.33333333349" in out
    assert "no answer" not in out
    assert _our_netns() - before == set()
