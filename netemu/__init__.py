"""netemu: a network and load-balancing emulator for Kubernetes Services, centred on kube-proxy.

Layers (top depends on bottom, never the reverse): cli -> emulator -> agent (kubelet, proxy)
-> controllers -> apiserver -> store -> api (the object model). See docs/architecture.md.
"""

__version__ = "0.1.0"
