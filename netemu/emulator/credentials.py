"""Each node's own credentials, as ``kubeadm join`` leaves them: the kubelet's kubeconfig with a
client certificate for ``system:node:NAME`` (group ``system:nodes``: the Node authorizer and
NodeRestriction limit it to its own Node, Lease and pods) and kube-proxy's for
``system:kube-proxy`` (bound to system:node-proxier: it reads Services, EndpointSlices and
Nodes, nothing else), both signed by the cluster CA the API server keeps in its state dir.

The supervisor writes them once the API server is up (its CA exists), before it forks the
nodes; the admin kubeconfig stays the user's alone. The node's runtime process uses the
kubelet's (it reads a pod's configMap volumes as the kubelet would); the built-in apps in
pods act as their pods' ServiceAccounts, with the tokens the kubelet projected for them.
"""

from __future__ import annotations

from pathlib import Path

from netemu.apiserver import certs
from netemu.client import kubeconfig

KUBELET_CONF, PROXY_CONF = "kubelet.conf", "kube-proxy.conf"
PROXY_USER = "system:kube-proxy"


def node_identity(node: str) -> tuple[str, tuple[str, ...]]:
    """(user, groups) of a node's kubelet (upstream's system:node:NAME in system:nodes)."""
    return f"system:node:{node}", ("system:nodes",)


def write(ca_dir: Path, admin_kubeconfig: str, path: Path, user: str, groups: tuple[str, ...]) -> Path:
    """A kubeconfig for ``user`` at ``path``: the admin kubeconfig's server and CA, a new client
    certificate signed by the CA in ``ca_dir``."""
    access = kubeconfig.load(admin_kubeconfig)
    cert, key = certs.issue_client(ca_dir, user, groups)
    kubeconfig.write(path, kubeconfig.render(access.server, ca_data=access.ca_data, client_cert=cert,
                                             client_key=key, user=user))
    return path


def kubelet_conf(state: Path, ca_dir: Path, admin_kubeconfig: str, node: str) -> Path:
    """The node's kubelet.conf under nodes/NODE/ (also for a node added to a running cluster)."""
    return write(ca_dir, admin_kubeconfig, state / "nodes" / node / KUBELET_CONF, *node_identity(node))


def node_kubeconfigs(state: Path, ca_dir: Path, admin_kubeconfig: str,
                     nodes: list[str]) -> tuple[dict[str, Path], Path]:
    """({node: its kubelet.conf under nodes/NODE/}, the kube-proxy.conf all nodes share, as
    kubeadm's kube-proxy DaemonSet shares one ServiceAccount)."""
    kubelets = {n: kubelet_conf(state, ca_dir, admin_kubeconfig, n) for n in nodes}
    proxy = write(ca_dir, admin_kubeconfig, state / PROXY_CONF, PROXY_USER, ())
    return kubelets, proxy
