"""The default cluster: one switch, a ``control-plane`` host and N worker hosts (kind's names).

Node names follow kind: ``control-plane``, ``worker``, ``worker2``, ``worker3``, ... (the
Kubernetes Node names; Mininet's own host names are made unique per cluster by the emulator).
Host params the emulator reads: ``role`` (control-plane | worker), ``labels`` (dict), ``taints``
(list of "key=value:Effect"), ``cpu``, ``memory``, ``pods`` (capacity), ``proxy_mode`` (this node's
kube-proxy mode, overriding ``netemu up --proxy-mode``).

    netemu up --topo topologies/cluster.py:ClusterTopo,3
    netemu up --topo topologies/cluster.py:ClusterTopo,workers=2,cpu=4
    netemu up --topo topologies/cluster.py:MixedProxyTopo      # worker: iptables, worker2: nftables
"""

from mininet.topo import Topo


def worker_name(index: int) -> str:
    """kind's scheme: the first worker is ``worker``, then ``worker2``, ``worker3``..."""
    return "worker" if index == 1 else f"worker{index}"


class ClusterTopo(Topo):
    """One switch; the control plane and ``workers`` worker nodes hang off it."""

    def build(self, workers=2, cpu="2", memory="4Gi", pods=110):
        workers = int(workers)
        switch = self.addSwitch("s1")
        self.addLink(self.addHost("control-plane", role="control-plane"), switch)
        for i in range(1, workers + 1):
            host = self.addHost(worker_name(i), role="worker", cpu=str(cpu), memory=str(memory), pods=int(pods))
            self.addLink(host, switch)


class MixedProxyTopo(Topo):
    """The default cluster with one kube-proxy mode per worker, in ``modes`` order (comma list):
    one cluster where the same Services are served by iptables on one node and nftables on
    another, side by side."""

    def build(self, modes="iptables,nftables", cpu="2", memory="4Gi", pods=110):
        switch = self.addSwitch("s1")
        self.addLink(self.addHost("control-plane", role="control-plane"), switch)
        for i, mode in enumerate(str(modes).split(","), 1):
            host = self.addHost(worker_name(i), role="worker", proxy_mode=mode.strip(), cpu=str(cpu),
                                memory=str(memory), pods=int(pods))
            self.addLink(host, switch)


topos = {"cluster": ClusterTopo, "mixed-proxy": MixedProxyTopo}
