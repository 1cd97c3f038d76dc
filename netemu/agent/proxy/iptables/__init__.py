"""kube-proxy iptables mode (upstream kubernetes v1.32 pkg/proxy/iptables).

Where things are: builder.py assembles one sync's ``iptables-restore`` input from the rules of
each service port (service_rules.py), optionally reusing them between syncs (cache.py);
chains.py holds the fixed chains, jump rules and canaries; normalize.py sorts restore text
like upstream's tests, rewrites it in ``iptables-save`` form and compares dumps; dump.py parses
dumps for the tracer; verify.py checks this machine's iptables against the builder; bench.py
times the builder. The applier (apply.py) is the only part that touches the kernel;
canary.py watches it for flushes (upstream's Monitor) through the applier.

``render()`` is the one-call entry for fixtures, tracers and ``netemu proxy render``: lists of
Service and EndpointSlice dicts in, RuleSet out.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..model import NodeInfo, ProxyConfig, endpoints_by_service_port, service_port_map
from .builder import BuildCache, RuleSet, build, probability
from .chains import JumpRule, canary_chains, jump_rules

# Upstream proxier_test.go's fake node: lets tests reuse its IPs and expected dumps.
UPSTREAM_TEST_NODE = NodeInfo("test-node", ("192.168.0.2",), "10.0.0.0/8")

__all__ = ["BuildCache", "RuleSet", "JumpRule", "build", "canary_chains", "jump_rules", "probability", "render",
           "UPSTREAM_TEST_NODE"]


def render(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
           node: NodeInfo | None = None, config: ProxyConfig | None = None, *,
           problems: list[str] | None = None) -> RuleSet:
    """Full-sync rules for Service and EndpointSlice dicts (bad objects skipped, see problems)."""
    node = node or UPSTREAM_TEST_NODE
    svc_map = service_port_map(services, node, problems=problems)
    eps_map = endpoints_by_service_port(slices, node, problems=problems)
    return build(svc_map, eps_map, node, config)
