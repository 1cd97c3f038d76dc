"""Two racks (zones), each with its own switch, joined by one inter-switch link.

Workers carry ``topology.kubernetes.io/zone`` labels (``zone-a``, ``zone-b``), so topology-aware
routing (trafficDistribution, topology hints) and zone spread can be tried on real traffic; the
inter-switch link is the one to cut or shape to see cross-zone effects. The control plane sits in
zone A. Node names: ``control-plane``, ``a1..aN``, ``b1..bN``.

    netemu up --topo topologies/zones.py:TwoZoneTopo,2
    netemu up --topo topologies/zones.py:TwoZoneTopo,per_zone=3,zone_a=east,zone_b=west
    netemu up --topo topologies/zones.py:TwoZoneTopo,2,cross_bw=100
"""

from mininet.topo import Topo

ZONE_LABEL = "topology.kubernetes.io/zone"


class TwoZoneTopo(Topo):
    """``per_zone`` workers in each of two zones; one switch per zone, one link between them."""

    def build(self, per_zone=2, zone_a="zone-a", zone_b="zone-b", cross_bw=None, cross_delay=None):
        """cross_bw (Mbit/s) and cross_delay ("5ms") shape the inter-zone link (Mininet TCLink;
        netemu refuses them up front where the kernel lacks htb/netem)."""
        per_zone = int(per_zone)
        rack_a, rack_b = self.addSwitch("s1"), self.addSwitch("s2")
        self.addLink(self.addHost("control-plane", role="control-plane"), rack_a)
        for prefix, zone, rack in (("a", zone_a, rack_a), ("b", zone_b, rack_b)):
            for i in range(1, per_zone + 1):
                host = self.addHost(f"{prefix}{i}", role="worker", labels={ZONE_LABEL: zone})
                self.addLink(host, rack)
        shaping = {k: v for k, v in (("bw", cross_bw), ("delay", cross_delay)) if v not in (None, "")}
        self.addLink(rack_a, rack_b, **shaping)


topos = {"zones": TwoZoneTopo}
