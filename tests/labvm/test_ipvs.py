"""IPVS the way kube-proxy's ipvs mode programs it, through pyroute2 (needs ip_vs: lab VM only).

kube-proxy binds every ClusterIP to the dummy interface kube-ipvs0 (so the node accepts the
packets), creates one virtual server per Service port and one real server per endpoint, in NAT
(masquerade) mode. Here: the VIP on a dummy kube-ipvs0, an rr virtual server with two real servers
in namespaces this test makes, and a client namespace whose connections must spread over both.
When netemu gets an IPVS proxier (netemu/agent/proxy), its end-to-end test replaces this one.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import subprocess
import time
from socket import IPPROTO_TCP

import pytest

from tests.labvm._lab import TAG, ip, netns, sysctls, veth_into

pytestmark = [pytest.mark.labvm, pytest.mark.timeout(600)]

VIP = "10.96.0.10"
PORT = 80


@contextlib.contextmanager
def dummy(name: str, address: str):
    ip("link", "add", name, "type", "dummy")
    try:
        ip("addr", "add", address, "dev", name)
        ip("link", "set", name, "up")
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


@contextlib.contextmanager
def tcp_echo_name(ns: str, address: str, reply: str):
    """socat in ``ns`` answering every connection with ``reply`` (no shell: EXEC splits argv)."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "socat", f"TCP-LISTEN:{PORT},bind={address},fork,reuseaddr",
                             f"EXEC:/bin/echo {reply}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:  # ready when it accepts (from this namespace, which routes to it)
            try:
                socket.create_connection((address, PORT), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def ipvs_service(vip: str, reals: list[str], scheduler: str = "rr"):
    from pyroute2 import IPVS, IPVSDest, IPVSService

    ipvs = IPVS()
    svc = IPVSService(addr=vip, port=PORT, protocol=IPPROTO_TCP, sched_name=scheduler)
    ipvs.service("add", service=svc)
    try:
        for real in reals:  # fwd_method 0 = IP_VS_CONN_F_MASQ: NAT, what kube-proxy uses
            ipvs.dest("add", service=svc, dest=IPVSDest(addr=real, port=PORT, weight=1, fwd_method=0))
        yield ipvs, svc
    finally:
        ipvs.service("del", service=svc)
        ipvs.close()


def fetch(ns: str, address: str) -> str:
    """One TCP connection from ``ns``: what the server says before closing.

    -u (read only from the connection) rather than "-": with stdin at EOF, socat would give a slow
    server just 0.5 s before hanging up, and an emulated CPU under load needs more.
    """
    done = subprocess.run(["ip", "netns", "exec", ns, "socat", "-u", "-T", "20",
                           f"TCP:{address}:{PORT},connect-timeout=10", "STDOUT"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_ipvs_rr_virtual_server_spreads_connections_over_both_real_servers():
    from pyroute2 import IPVSDest

    rs = [f"lvr1-{TAG}", f"lvr2-{TAG}"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(sysctls({"net.ipv4.ip_forward": "1", "net.ipv4.vs.conntrack": "1"}))
        stack.enter_context(dummy(f"kipvs{TAG}", f"{VIP}/32"))  # kube-ipvs0, named for this test
        reals = []
        for i, name in enumerate(rs, start=1):
            stack.enter_context(netns(name))
            veth_into(name, f"lv{TAG}r{i}", f"10.10.{i}.1/24", f"10.10.{i}.2/24", f"10.10.{i}.1")
            stack.enter_context(tcp_echo_name(name, f"10.10.{i}.2", name))
            reals.append(f"10.10.{i}.2")
        client = stack.enter_context(netns(f"lvcl-{TAG}"))
        veth_into(client, f"lv{TAG}c", "10.10.9.1/24", "10.10.9.2/24", "10.10.9.1")
        ipvs, svc = stack.enter_context(ipvs_service(VIP, reals))

        dests = [IPVSDest.from_message(d) for d in ipvs.dest("dump", service=svc)]
        assert sorted(str(d["addr"]) for d in dests) == sorted(reals)

        answers = collections.Counter(fetch(client, VIP) for _ in range(10))
        assert set(answers) == set(rs), answers
        assert abs(answers[rs[0]] - answers[rs[1]]) <= 1, f"rr should alternate: {answers}"
