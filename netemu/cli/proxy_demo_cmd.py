"""``netemu proxy demo``: real traffic through a Service's kube-proxy rules, on this box, in a minute.

Until the full cluster demo exists this is the README's main command: it builds, in namespaces
it creates and removes (also on Ctrl-C or failure), one node with a cni0 bridge, three pods each
running a tiny HTTP server that answers its pod name, and a client pod; it gives our iptables
Proxier a Service (ClusterIP) and its EndpointSlice, lets it program the node's kernel, sends
HTTP requests to the ClusterIP from the client pod, and shows where they went and the rules
that sent them there (the node's KUBE-SVC chain, as iptables-save prints it).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import time

from netemu.agent.proxy.hashing import service_chains
from netemu.agent.proxy.commands import netns_exec
from netemu.agent.proxy.xtables.apply import BACKEND_CHOICES
from netemu.agent.proxy.model import NodeInfo
from netemu.agent.proxy.iptables.proxier import IptablesProxier
from netemu.testing.netnslab import Lab, in_netns, requests, run
from netemu.cli.main import Command, UsageError

CLUSTER_IP = "10.96.0.80"
SERVICE_PORT = 80
POD_PORT = 8080


def demo_service(name: str = "web", namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP],
                     "selector": {"app": name},
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": POD_PORT,
                                "protocol": "TCP"}]}}


def demo_slice(pods, name: str = "web", namespace: str = "default") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True, "serving": True},
                           "nodeName": p.node.name, "targetRef": {"kind": "Pod", "name": p.name}}
                          for p in pods]}


def chain_excerpt(save_text: str, chains: set[str]) -> list[str]:
    """The lines of an iptables-save that belong to ``chains`` (declarations and rules)."""
    out = []
    for line in save_text.splitlines():
        words = line.split()
        if not words:
            continue
        if (words[0].startswith(":") and words[0][1:] in chains) or (
                words[0] == "-A" and len(words) > 1 and words[1] in chains):
            out.append(line)
    return out


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="iptables",
                   help="iptables binaries: the system's alternative (default), nft or legacy")
    p.add_argument("--pods", type=int, default=3, help="endpoints behind the Service (default 3)")
    p.add_argument("--requests", type=int, default=300, help="HTTP requests to send (default 300)")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("netemu proxy demo makes network namespaces: run it as root")
    if not 1 <= args.pods <= 50:
        raise UsageError(f"--pods must be 1..50, got {args.pods}")
    if not 1 <= args.requests <= 100000:
        raise UsageError(f"--requests must be 1..100000, got {args.requests}")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on kill too
    try:
        with Lab() as lab:
            return _demo(lab, args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _demo(lab: Lab, args: argparse.Namespace) -> int:
    print(f"building namespaces (prefix {lab.prefix}): node, {args.pods} pods, a client ...")
    node = lab.node("node")
    pods = [lab.pod(node, f"web-{i}") for i in range(args.pods)]
    client = lab.pod(node, "client")
    for pod in pods:
        lab.echo_server(pod, POD_PORT)
    proxier = IptablesProxier(NodeInfo(name=node.name, ips=(node.gateway,), cluster_cidr="10.244.0.0/16"),
                              backend=args.backend, exec_=netns_exec(node.netns))
    proxier.load([demo_service()], [demo_slice(pods)])
    result = proxier.sync()
    if not result.ok:
        print(f"sync failed: {result.error}")
        return 1
    print(f"kube-proxy ({proxier.backend} backend) synced {sum(result.rules.values())} rules in "
          f"{result.duration * 1000:.0f} ms (one iptables-restore)")
    print(f"\nService default/web  ClusterIP {CLUSTER_IP}:{SERVICE_PORT} -> "
          + ", ".join(f"{p.name} {p.ip}:{POD_PORT}" for p in pods))
    start = time.monotonic()
    answers = requests(client.netns, CLUSTER_IP, SERVICE_PORT, count=args.requests)
    elapsed = time.monotonic() - start
    counts = collections.Counter(a.split()[0] if a else "(no answer)" for a in answers)
    print(f"\n{args.requests} HTTP requests from the client pod {client.ip} in {elapsed:.2f} s:")
    for pod in pods:
        n = counts.get(pod.name, 0)
        print(f"  {pod.name:<8} {pod.ip:<13} {n:>5}  {100 * n / args.requests:5.1f}%  {'#' * (60 * n // args.requests)}")
    if counts.get("(no answer)"):
        print(f"  no answer: {counts['(no answer)']}")
    save = run(in_netns(node.netns, [f"iptables-{proxier.backend}-save", "-t", "nat"])).stdout
    svc_chain = service_chains("default/web:http", "tcp")[0]  # upstream hashes the lower-case protocol
    svc_lines = chain_excerpt(save, {svc_chain})
    seps = {line.split()[-1] for line in svc_lines if line.split()[-1].startswith("KUBE-SEP-")}
    print(f"\nthe node's {svc_chain} chain and its endpoint chains (iptables-{proxier.backend}-save -t nat):")
    for line in svc_lines + chain_excerpt(save, seps):
        print(f"  {line}")
    print("\ncleaning up namespaces and processes")
    return 0 if not counts.get("(no answer)") else 1


COMMANDS = [Command("proxy demo", "kube-proxy alone: real traffic through a Service's kube-proxy rules (namespaces on this box)",
                    _add_arguments, run_demo)]
