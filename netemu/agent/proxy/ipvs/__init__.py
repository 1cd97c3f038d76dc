"""kube-proxy IPVS mode (upstream kubernetes v1.32 pkg/proxy/ipvs).

Not implemented yet (and ip_vs is not in this machine's kernel: the lab VM has it): the registry
(../modes.py) knows the mode for its kernel needs and for ``netemu proxy cleanup``, which removes
the kube-ipvs0 link and KUBE-* ipsets an IPVS kube-proxy leaves (cleanup.py). The mode's
planner, applier, tracer and proxier go here, shaped like ../iptables/.
"""
