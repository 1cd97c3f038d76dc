"""The layer contract (.importlinter) holds for this tree, and lint-imports really fails when it
is broken: each case copies netemu/ to a throwaway directory, adds one forbidden import (the
kinds of breaks issue 16 found and fixed) and runs lint-imports on the copy with the same
contracts. The unbroken copy passes, so a failure can only come from the break."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """netemu/ and .importlinter in a throwaway directory (the sources only)."""
    shutil.copytree(ROOT / "netemu", tmp_path / "netemu", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def add_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    path.write_text(text + "\n" + line + "\n")


def test_this_tree_keeps_every_contract():
    proc = lint(ROOT, ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout


def test_an_unbroken_copy_passes(copy):
    proc = lint(copy, copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr


BREAKS = {
    # the controllers' flags reaching up into the CLI (controllers/options.py did)
    "controllers -> cli": ("netemu/controllers/options.py", "from netemu.cli.main import UsageError",
                           "netemu.controllers.options -> netemu.cli.main"),
    # the API server starting the controllers (apiserver/server.py did)
    "apiserver -> controllers": ("netemu/apiserver/app.py", "from netemu.controllers import manager",
                                 "netemu.apiserver.app -> netemu.controllers.manager"),
    # the API server using the client (apiserver/server.py did, for the kubeconfig)
    "apiserver -> client": ("netemu/apiserver/registry.py", "from netemu.client import kubeconfig",
                            "netemu.apiserver.registry -> netemu.client.kubeconfig"),
    # the product using a harness (the emulator imported the fake agent's fake nodes)
    "emulator -> testing": ("netemu/emulator/supervisor.py", "import netemu.testing.fakenodes",
                            "netemu.emulator.supervisor -> netemu.testing.fakenodes"),
    # a harness reached from a CLI module that is not one of the harness commands
    "cli -> testing": ("netemu/cli/apply_get_delete_cmd.py", "from netemu.testing import netnslab",
                       "netemu.cli.apply_get_delete_cmd -> netemu.testing.netnslab"),
    # the node agent going around the API
    "agent -> store": ("netemu/agent/kubelet/kubelet.py", "from netemu.store import factory",
                       "netemu.agent.kubelet.kubelet -> netemu.store.factory"),
    # kube-proxy reaching into the kubelet
    "proxy -> kubelet": ("netemu/agent/proxy/model.py", "from netemu.agent.kubelet import status",
                         "netemu.agent.proxy.model -> netemu.agent.kubelet.status"),
    # the object model importing a benchmark
    "api -> bench": ("netemu/api/kinds.py", "import netemu.bench.api",
                     "netemu.api.kinds -> netemu.bench.api"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_forbidden_import_fails_lint_imports(copy, case):
    path, line, arrow = BREAKS[case]
    add_line(copy / path, line)
    proc = lint(copy, copy)
    assert proc.returncode != 0, proc.stdout
    assert "BROKEN" in proc.stdout and arrow in proc.stdout, proc.stdout


def test_a_second_proxy_mode_may_not_import_the_first(copy):
    """A new mode adds its package and its line to the independence contract."""
    add_line(copy / "netemu/agent/proxy/fakemode/__init__.py", "from netemu.agent.proxy.iptables import builder")
    config = copy / ".importlinter"
    text = config.read_text()
    assert "    netemu.agent.proxy.iptables\n" in text
    config.write_text(text.replace("    netemu.agent.proxy.iptables\n",
                                   "    netemu.agent.proxy.iptables\n    netemu.agent.proxy.fakemode\n"))
    proc = lint(copy, copy)
    assert proc.returncode != 0, proc.stdout
    assert "netemu.agent.proxy.fakemode -> netemu.agent.proxy.iptables.builder" in proc.stdout, proc.stdout
