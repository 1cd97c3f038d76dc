"""The cluster supervisor's imports (issue 17, memory): Mininet's ``distutils.version`` comes
from the standard library, not through setuptools' shim, which imported setuptools and
pkg_resources (16 MB for the cluster's whole life, measured). Run in a fresh interpreter: the
shim is installed at start-up by setuptools' .pth file, as in the supervisor."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def test_mininet_is_imported_without_setuptools_or_pkg_resources():
    source = textwrap.dedent("""
        import json, sys
        from netemu.emulator import network
        network.switch_class("linuxbridge")
        import mininet.net
        print(json.dumps({"stdlib": network.stdlib_distutils(),
                          "shim": any(type(f).__name__ == "DistutilsMetaFinder" for f in sys.meta_path),
                          "heavy": sorted(m for m in ("setuptools", "pkg_resources") if m in sys.modules)}))
    """)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    if not got["stdlib"]:
        pytest.skip("no standard-library distutils here (Debian's python3-distutils): the shim's is used")
    assert got["heavy"] == []
