"""Harnesses, fakes and labs that exercise netemu from outside: for its tests, its benchmarks,
and users who want the same fixtures in their own experiments.

Nothing in the product imports this package (the import-linter contract in .importlinter says
so and ``scripts/test`` checks it); it sits above the layers it exercises. The exceptions are
CLI commands whose whole job is to run a harness (``netemu fake-nodes``, ``netemu proxy demo``),
named one by one in that contract.

- ``apiserver``          an API server inside the test's event loop, on a free loopback port
- ``apiserver_process``  a ``netemu apiserver`` child process, stopped by its PID
- ``fakenodes``          KWOK-style Node objects with a pretend kubelet (no kernel networking)
- ``fakeagent``          the stand-in node agent of ``netemu up --fake-agents`` (run as ``-m``)
- ``netnslab``           namespaces, bridges, veths, echo servers for one experiment (``Lab``)
- ``agentlab``           ``netemu apiserver`` + one ``netemu agent`` in namespaces of their own
- ``iptables_verify``    this machine's iptables (nft, legacy; IPv4, IPv6) against the rule builder (root)
- ``ipvs_fake``          a node kernel for the IPVS mode in memory (IPVS table, kube-ipvs0, ipsets, iptables)
"""
