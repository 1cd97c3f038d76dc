"""kube-proxy iptables mode (upstream kubernetes v1.32 pkg/proxy/iptables).

The mode's shape, as every mode's: pure builder -> applier -> cleanup -> tracer -> proxier.
builder.py assembles one sync's ``iptables-restore`` input from the rules of each service port
(service_rules.py), optionally reusing them between syncs (cache.py); chains.py holds the fixed
chains, jump rules and canaries; normalize.py sorts restore text like upstream's tests, rewrites
it in ``iptables-save`` form and compares dumps. What this mode shares with the IPVS mode's
iptables chains lives in ../xtables/ (mode-neutral): the one parser of iptables-save/restore text
(dump.py, rule.py), the applier that runs the binaries (apply.py, the only part touching the
kernel) and the packet tracer (trace.py). canary.py watches the kernel for flushes (upstream's
Monitor) through the applier; cleanup.py removes what the mode left; trace.py is the mode's
tracer hook (the xtables tracer with this mode's jumps); proxier.py runs it all. Outside the product: netemu/testing/iptables_verify.py checks this machine's
iptables against the builder, netemu/bench/iptables.py times the builder.

``render()`` is the one-call entry for fixtures and tracers: lists of Service and EndpointSlice
dicts in, RuleSet out; ``rendering()`` is the registry's renderer hook (``netemu proxy render``).
The mode's other hooks: proxier.make_proxier, trace.trace, cleanup.cleanup (see ../modes.py).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..model import NodeInfo, ProxyConfig, endpoints_by_service_port, seen_by_kube_proxy, service_port_map
from ..modes import Rendering
from .builder import BuildCache, RuleSet, build, probability
from .chains import JumpRule, canary_chains, jump_rules

# Upstream proxier_test.go's fake node: lets tests reuse its IPs and expected dumps.
UPSTREAM_TEST_NODE = NodeInfo("test-node", ("192.168.0.2",), "10.0.0.0/8")

__all__ = ["BuildCache", "RuleSet", "JumpRule", "build", "canary_chains", "jump_rules", "probability", "render",
           "rendering", "UPSTREAM_TEST_NODE"]


def render(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
           node: NodeInfo | None = None, config: ProxyConfig | None = None, *,
           problems: list[str] | None = None) -> RuleSet:
    """Full-sync rules for Service and EndpointSlice dicts (bad objects skipped, see problems);
    objects kube-proxy's informers would not deliver (labels, seen_by_kube_proxy) are left out."""
    node = node or UPSTREAM_TEST_NODE
    svc_map = service_port_map(seen_by_kube_proxy(services), node, problems=problems)
    eps_map = endpoints_by_service_port(seen_by_kube_proxy(slices), node, problems=problems)
    return build(svc_map, eps_map, node, config)


def rendering(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]], node: NodeInfo,
              config: ProxyConfig | None = None, *, problems: list[str] | None = None,
              upstream_order: bool = False, save_form: bool = False) -> Rendering:
    """The registry's renderer hook: the full-sync ``iptables-restore`` input (sorted like
    upstream's test dumps, or in ``iptables-save`` form, on request) and how to compare it."""
    from .normalize import compare, save_form as in_save_form, sort_like_upstream

    rules = render(services, slices, node, config, problems=problems)
    ipv6 = node.ip_family == "IPv6"
    text = sort_like_upstream(rules.text) if upstream_order else rules.text
    if save_form:
        text = in_save_form(text, ipv6)
    summary = f"filter {rules.rule_counts['filter']} rules, nat {rules.rule_counts['nat']} rules"
    return Rendering(text, summary, lambda theirs: compare(rules.text, theirs, ipv6))
