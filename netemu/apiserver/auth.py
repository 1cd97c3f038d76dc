"""The admin credentials in the state dir.

One admin token, generated at first start and kept (mode 0600) in ``<state-dir>/admin.token``
so restarts keep working kubeconfigs; it authenticates as ``kubernetes-admin`` in
``kubeadm:cluster-admins`` (netemu/apiserver/security.py).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


TOKEN_FILE = "admin.token"
KUBECONFIG_FILE = "kubeconfig"


def load_or_create_token(state_dir: str | os.PathLike) -> str:
    """The admin token of this state dir, created (0600) on first use."""
    path = Path(state_dir) / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token
