"""The default cluster: one switch, a ``control-plane`` host and N worker hosts (kind's names).

Node names follow kind: ``control-plane``, ``worker``, ``worker2``, ``worker3``, ... (the
Kubernetes Node names; Mininet's own host names are made unique per cluster by the emulator).
Host params the emulator reads: ``role`` (control-plane | worker), ``labels`` (dict), ``taints``
(list of "key=value:Effect"), ``cpu``, ``memory``, ``pods`` (capacity).

    netemu up --topo topologies/cluster.py:ClusterTopo,3
    netemu up --topo topologies/cluster.py:ClusterTopo,workers=2,cpu=4
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


topos = {"cluster": ClusterTopo}
