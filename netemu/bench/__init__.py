"""Benchmarks, each a ``python -m netemu.bench.NAME`` program; docs/benchmarks.md has the
commands, the numbers they gave and the targets.

Nothing in the product imports this package (the import-linter contract in .importlinter).

- ``api``              what the object model costs per API write (pure, no root)
- ``apiserver``        HTTPS writes/s and watch delivery latency, SQLite and etcd
- ``apiserver_scale``  the API server under a 100-node cluster's control-plane load
- ``runtime``          pod sandbox creation and memory per pod (root)
- ``agent``            one node agent's memory and pod start-up (root)
- ``iptables``         the pure iptables rule builder: full, partial and cached builds (no root)
"""
