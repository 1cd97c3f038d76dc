"""Upstream's Service behaviours in the lab VM: the ``vm_subset`` of tests/e2e/service_behaviours
for the proxy modes this host's kernel cannot run (ipvs: ip_vs, dummy, ip_set).

Python is ~10x slower in the VM, so only the subset runs (the behaviours each mode must get
right: endpoints, protocols, source IP, hairpin, REJECT, node ports, affinity, the proxy labels,
traffic policies, terminating fallback, UDP conntrack, source ranges). The suite runs as its own
pytest (one cluster per mode) and prints each mode's recorded outcomes, which
``scripts/service-behaviours --labvm MODE`` writes into docs/service-behaviours/.

``NETEMU_PROXY_MODES`` names the modes; without it (a plain lab suite run, CI) the test skips:
the subset takes ~40 minutes in the VM under TCG (the 3-node cluster alone ~5, then 1-4 minutes a
behaviour), far more than CI's lab budget. ``scripts/service-behaviours --labvm ipvs`` runs it
and records the outcomes; tests/labvm/test_ipvs_cluster.py is CI's IPVS cluster check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(5400)]


def vm_modes() -> list[str]:
    named = os.environ.get("NETEMU_PROXY_MODES", "").strip()
    return [m.strip() for m in named.split(",") if m.strip()]


def test_service_behaviours_vm_subset():
    """The clusters on Linux bridges (nothing starts Open vSwitch in the VM, and the subset is
    about the proxy, not the switch); scripts/labvm puts the host's kubectl on PATH."""
    from netemu.agent.proxy import modes
    wanted = vm_modes()
    if not wanted:
        pytest.skip("the Service-behaviour subset takes ~40 min in the lab VM: run it with "
                    "scripts/service-behaviours --labvm ipvs (NETEMU_PROXY_MODES names the modes)")
    missing = [m for m in wanted if m not in modes.selectable()]
    if missing:
        pytest.skip(f"no such proxy mode to run here: {', '.join(missing)}; "
                    f"selectable: {', '.join(modes.selectable())}")
    if shutil.which("kubectl") is None:     # the suite drives its clusters with real kubectl
        pytest.skip("no kubectl in the lab VM image (the Service-behaviour suite drives its clusters with it)")
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "NETEMU_PROXY_MODES": ",".join(wanted), "NETEMU_RECORD_BEHAVIOURS": "1",
               "NETEMU_BEHAVIOURS_DIR": out,
               "NETEMU_BEHAVIOURS_UP_ARGS": "--switch linuxbridge"}
        # --timeout: a test's own limit (setup.cfg: 300 s) is the host's; the first test's setup
        # brings the cluster up, which alone takes ~300 s in the VM
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--timeout=900",
                               "-m", "vm_subset", "tests/e2e/service_behaviours"], env=env, timeout=5100)
    assert done.returncode == 0, f"the Service-behaviour subset failed in {wanted} (exit {done.returncode})"
