"""Fixtures for the lab VM suite: Open vSwitch started for the test session if it is not running.

The CI lab VM boots without systemd (scripts/labvm's own init), so nothing starts ovs-vswitchd;
in the Vagrant lab systemd already runs it and this fixture leaves it alone.
"""

from __future__ import annotations

import subprocess

import pytest

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def _ovs_running() -> bool:
    return subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def ovs():
    """ovs-vswitchd and ovsdb-server running; stopped again only if this fixture started them."""
    started = False
    if not _ovs_running():
        done = subprocess.run([OVS_CTL, "start", "--system-id=random"], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and _ovs_running(), f"ovs-ctl start failed: {done.stdout}{done.stderr}"
        started = True
    try:
        yield
    finally:
        if started:
            subprocess.run([OVS_CTL, "stop"], capture_output=True, check=False)


@pytest.fixture
def quiet_mininet():
    from mininet.log import setLogLevel

    setLogLevel("warning")
    yield
