"""ServiceAccount tokens: RS256 JWTs signed with the cluster's key, as upstream issues them.

The key (``sa.key``, RSA 2048, 0600) lives in the state dir like kubeadm's
/etc/kubernetes/pki/sa.key, so tokens stay valid across restarts. ``issue`` builds the claims
of a bound token (pkg/serviceaccount/claims.go: iss, sub, aud, exp, iat, nbf, jti and the
``kubernetes.io`` claim naming the namespace, the ServiceAccount and the pod or secret it is
bound to, plus the pod's node); ``verify`` checks signature, issuer, audience and time and
returns the claims, or raises ``InvalidToken`` with the reason. Whether the bound objects still
exist is the authenticator's check (it reads the store). JWT handling is PyJWT's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
KEY_FILE = "sa.key"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600


class InvalidToken(Exception):
    """A token that is not ours, is tampered with, expired, or for another audience."""


def _key_id(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


@dataclass
class TokenIssuer:
    private_key: Any
    issuer: str = ISSUER
    audiences: tuple[str, ...] = (ISSUER,)

    def __post_init__(self) -> None:
        self.public_key = self.private_key.public_key()
        self.kid = _key_id(self.public_key)

    @classmethod
    def load_or_create(cls, state_dir: str | os.PathLike, **kw: Any) -> "TokenIssuer":
        path = Path(state_dir) / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        return cls(key, **kw)

    def issue(self, namespace: str, sa_name: str, sa_uid: str, *, audiences: list[str] | None = None,
              expiration: int = DEFAULT_EXPIRATION, pod: tuple[str, str] | None = None,
              secret: tuple[str, str] | None = None, node: tuple[str, str] | None = None,
              now: float | None = None, warn_after: int | None = None) -> tuple[str, int]:
        """(token, expiry as a unix time) for the ServiceAccount; ``pod``/``secret``/``node`` are
        (name, uid) of the objects it is bound to."""
        now = int(now if now is not None else time.time())
        exp = now + expiration
        k8s: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if pod:
            k8s["pod"] = {"name": pod[0], "uid": pod[1]}
        if secret:
            k8s["secret"] = {"name": secret[0], "uid": secret[1]}
        if node:
            k8s["node"] = {"name": node[0], "uid": node[1]}
        if warn_after:
            k8s["warnafter"] = now + warn_after
        claims = {"aud": list(audiences or self.audiences), "exp": exp, "iat": now, "nbf": now,
                  "iss": self.issuer, "jti": str(uuid.uuid4()), "kubernetes.io": k8s,
                  "sub": f"system:serviceaccount:{namespace}:{sa_name}"}
        token = jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})
        return token, exp

    def verify(self, token: str, audiences: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """The claims of a valid token; InvalidToken says why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        if header.get("alg") != "RS256":
            raise InvalidToken(f"unexpected signing algorithm {header.get('alg')!r}")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], issuer=self.issuer,
                                audience=list(audiences or self.audiences), leeway=0,
                                options={"require": ["exp", "iss", "sub", "aud"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("Token has expired.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audiences don't match") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid bearer token: {exc}") from None
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("serviceaccount"), dict):
            raise InvalidToken("token has no kubernetes.io claims")
        return claims

    def public_jwks(self) -> dict[str, Any]:
        """The key set at /openid/v1/jwks (upstream's service account issuer discovery)."""
        nums = self.public_key.public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode().rstrip("=")
        return {"keys": [{"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                          "n": b64(nums.n), "e": b64(nums.e)}]}
