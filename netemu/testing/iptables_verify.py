"""Check this machine's iptables against our builder: render, restore, save, compare.

For each backend (nft, legacy) and family (IPv4, IPv6) a scratch network namespace is made,
a scenario using every rule shape the builder writes (affinity, ETP/ITP Local, source ranges,
no-endpoint REJECT/DROP, UDP, SCTP, external IPs) is loaded with ``iptables-restore --noflush``
twice (every sync re-applies), read back with ``iptables-save`` and compared with our rules in
save form. Any difference means the restore text or ``to_save_form`` no longer match this
iptables version. Needs root; touches only the namespaces it makes (removed at the end, also
on failure).

    sudo .venv/bin/python -m netemu.testing.iptables_verify [--backends nft,legacy] [--families 4,6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from netemu.agent.proxy.iptables import render
from netemu.agent.proxy.iptables.normalize import compare
from netemu.agent.proxy.model import NodeInfo, ProxyConfig

_V4 = dict(node=NodeInfo("node-a", ("192.168.0.2",), "10.0.0.0/8"), svc="172.30.0.", ep="10.180.0.",
           lb="1.2.3.", ext="192.168.99.", ranges=["203.0.113.0/25", "192.168.0.0/24"], tool="iptables")
_V6 = dict(node=NodeInfo("node-a", ("fd00:18::2",), "fd00:10::/64", ip_family="IPv6"), svc="fd00:96::",
           ep="fd00:10::", lb="fd00:99::", ext="fd00:98::", ranges=["fd00:18::/64"], tool="ip6tables")


def scenario(f: dict) -> tuple[list[dict], list[dict]]:
    """Services and EndpointSlices exercising every rule shape (see module docstring)."""
    def svc(i, **spec):
        spec.setdefault("ports", [{"name": "p", "port": 80, "protocol": "TCP"}])
        obj = {"metadata": {"namespace": "v", "name": f"s{i}"}, "spec": {"clusterIP": f"{f['svc']}{i}", **spec}}
        if spec.get("type") == "LoadBalancer":
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": f"{f['lb']}{i}"}]}}
        return obj

    def sl(i, eps, ports=None):
        return {"metadata": {"namespace": "v", "name": f"s{i}-x", "labels": {"kubernetes.io/service-name": f"s{i}"}},
                "addressType": f["node"].ip_family, "endpoints": eps,
                "ports": ports or [{"name": "p", "port": 8080, "protocol": "TCP"}]}

    def ep(n, node=None, **cond):
        return {"addresses": [f"{f['ep']}{n}"], "nodeName": node, "conditions": cond}

    node_port = [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    lb_port = [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30081}]
    multi = [{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "s", "port": 99, "protocol": "SCTP"}]
    services = [
        svc(1, sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
        svc(2, type="NodePort", externalTrafficPolicy="Local", ports=node_port, externalIPs=[f"{f['ext']}2"]),
        svc(3, type="LoadBalancer", loadBalancerSourceRanges=f["ranges"], ports=lb_port),
        svc(4, internalTrafficPolicy="Local", ports=multi),
        svc(5, type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=32005,
            ports=[{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30082}]),
        svc(6),
    ]
    slices = [
        sl(1, [ep(11), ep(12), ep(13)]),
        sl(2, [ep(21, "node-a"), ep(22, "node-b")]),
        sl(3, [ep(31), ep(32, ready=False, serving=True, terminating=True)]),
        sl(4, [ep(41, "node-a")], [{"name": "u", "port": 5353, "protocol": "UDP"},
                                   {"name": "s", "port": 99, "protocol": "SCTP"}]),
        sl(5, [ep(51, "node-b")]),
    ]
    return services, slices


def _run(argv: list[str], text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=text, text=True, capture_output=True)


def check(backend: str, family: dict) -> list[str]:
    """Differences between our rules and the kernel's read-back, [] when identical."""
    rules = render(*scenario(family), family["node"], ProxyConfig())
    ns = f"ntv{os.getpid() % 100000}{backend[0]}{family['tool'][2]}"
    made = _run(["ip", "netns", "add", ns])
    if made.returncode != 0:
        return [f"cannot create netns {ns}: {made.stderr.strip()}"]
    try:
        exec_ = ["ip", "netns", "exec", ns]
        for attempt in (1, 2):
            r = _run(exec_ + [f"{family['tool']}-{backend}-restore", "-w", "5", "--noflush"], rules.text)
            if r.returncode != 0:
                return [f"restore #{attempt} failed: {r.stderr.strip()[:500]}"]
        saved = _run(exec_ + [f"{family['tool']}-{backend}-save"])
        if saved.returncode != 0:
            return [f"save failed: {saved.stderr.strip()[:500]}"]
        return compare(rules.text, saved.stdout, family is _V6)
    finally:
        _run(["ip", "netns", "del", ns])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="nft,legacy")
    ap.add_argument("--families", default="4,6")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("verify: needs root (network namespaces)", file=sys.stderr)
        return 2
    failed = False
    for backend in args.backends.split(","):
        for fam in args.families.split(","):
            family = _V6 if fam == "6" else _V4
            diffs = check(backend, family)
            print(f"{family['tool']}-{backend}: {'OK, identical' if not diffs else f'{len(diffs)} differences'}")
            for d in diffs:
                print(f"  {d}")
            failed = failed or bool(diffs)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
