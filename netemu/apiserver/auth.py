"""Bearer-token authentication and the admin credentials in the state dir.

One admin token, generated at first start and kept (mode 0600) in ``<state-dir>/admin.token``
so restarts keep working kubeconfigs. Health and version endpoints stay open, as upstream's
``system:public-info-viewer`` role leaves them.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from netemu.api import errors

TOKEN_FILE = "admin.token"
KUBECONFIG_FILE = "kubeconfig"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version"})


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


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or any(path.startswith(p + "/") for p in ("/healthz", "/readyz", "/livez"))


def check(authorization: str | None, tokens: set[str]) -> None:
    """Raise Unauthorized unless the header carries one of ``tokens`` as a bearer token."""
    if authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented = presented.strip()
            for token in tokens:
                if hmac.compare_digest(presented.encode(), token.encode()):
                    return
    raise errors.Unauthorized("Unauthorized")
