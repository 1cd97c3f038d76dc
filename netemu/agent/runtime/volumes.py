"""Which ConfigMap key a path inside a container is, through the pod's configMap volumes (pure).

Pods here have no filesystem of their own, so a built-in image that reads a file its manifest
mounts from a ConfigMap (CoreDNS's ``-conf /etc/coredns/Corefile``) asks the API for that key
instead, and follows it as the kubelet's volume sync would.
"""

from __future__ import annotations

import posixpath


def configmap_file(pod: dict, container: dict, path: str) -> tuple[str, str, str] | None:
    """(namespace, ConfigMap name, key) behind ``path`` in ``container``; None when no
    configMap volume is mounted there."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    path = posixpath.normpath(path)
    for mount in container.get("volumeMounts") or []:
        root = posixpath.normpath(mount.get("mountPath") or "/")
        if mount.get("subPath"):
            continue
        if not (path == root or path.startswith(root.rstrip("/") + "/")):
            continue
        source = (volumes.get(mount.get("name")) or {}).get("configMap")
        if not source or not source.get("name"):
            continue
        rel = posixpath.relpath(path, root)
        items = source.get("items")
        if items:
            key = next((i.get("key") for i in items if posixpath.normpath(i.get("path") or "") == rel), None)
        else:
            key = rel if "/" not in rel else None
        if key:
            return (pod.get("metadata") or {}).get("namespace") or "default", source["name"], key
    return None
