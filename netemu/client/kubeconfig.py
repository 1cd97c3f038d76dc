"""Read and write the kubeconfig files kubectl, the python client and netemu itself share.

Only what netemu needs: one cluster (server, optional CA), one user (bearer token), one
context. The writer produces a file real kubectl uses unchanged.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

# libyaml's parser when PyYAML has it: the same safe constructor, but the pure-Python scanner
# and parser are not run, so the node components (each loads its kubeconfig at start) do not
# copy those modules' shared pages from the launcher template (~0.3 MB per process, measured)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to authenticate to it."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_data: bytes | None = None      # client certificate and key (PEM), X.509 authentication
    key_data: bytes | None = None


def load(path: str | os.PathLike, context: str | None = None) -> ClusterAccess:
    """The server, token and CA of ``context`` (default: current-context) in a kubeconfig."""
    with open(path, encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=SAFE_LOADER) or {}
    ctx_name = context or doc.get("current-context")
    contexts = {c["name"]: c.get("context", {}) for c in doc.get("contexts") or []}
    if ctx_name not in contexts:
        raise ValueError(f"{path}: no context {ctx_name!r}")
    ctx = contexts[ctx_name]
    clusters = {c["name"]: c.get("cluster", {}) for c in doc.get("clusters") or []}
    users = {u["name"]: u.get("user", {}) for u in doc.get("users") or []}
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None:
        raise ValueError(f"{path}: context {ctx_name!r} names no known cluster")
    user = users.get(ctx.get("user"), {})
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text(encoding="utf-8").strip()
    ca_data = cluster.get("certificate-authority-data")
    return ClusterAccess(
        server=cluster["server"],
        token=token,
        ca_file=cluster.get("certificate-authority"),
        ca_data=base64.b64decode(ca_data) if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_data=_data_or_file(user, "client-certificate"),
        key_data=_data_or_file(user, "client-key"),
    )


def _data_or_file(section: dict, key: str) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        return Path(section[key]).read_bytes()
    return None


def render(server: str, token: str | None = None, *, name: str = "netemu", ca_data: bytes | None = None,
           client_cert: bytes | None = None, client_key: bytes | None = None, user: str = "") -> str:
    """A kubeconfig document (YAML text) for one cluster, one user (a bearer token or a client
    certificate and key), one context."""
    cluster: dict[str, object] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    creds: dict[str, str] = {"token": token} if token else {}
    if client_cert and client_key:
        creds["client-certificate-data"] = base64.b64encode(client_cert).decode()
        creds["client-key-data"] = base64.b64encode(client_key).decode()
    user = user or f"{name}-admin"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user,
                                                "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: str | os.PathLike, text: str) -> None:
    """Write a kubeconfig readable only by its owner (it holds the admin token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
