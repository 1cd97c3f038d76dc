"""kube-proxy nftables mode (upstream kubernetes v1.32 pkg/proxy/nftables).

Not implemented yet: the registry (../modes.py) knows the mode for its kernel needs and for
``netemu proxy cleanup``, which removes the tables an upstream nftables kube-proxy leaves
(cleanup.py). The mode's builder, applier, tracer and proxier go here, shaped like ../iptables/.
"""
