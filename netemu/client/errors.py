"""Turn an API server's ``Status`` answer back into the StatusError the server raised.

So a caller writes ``except errors.Conflict`` whether the error happened in-process (the model,
the store) or came over HTTP.
"""

from __future__ import annotations

from typing import Any

from netemu.api import errors

_BY_REASON: dict[str, type[errors.StatusError]] = {
    cls.reason: cls for cls in (
        errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound,
        errors.MethodNotAllowed, errors.NotAcceptable, errors.AlreadyExists, errors.Conflict,
        errors.Gone, errors.RequestEntityTooLarge, errors.UnsupportedMediaType, errors.Invalid,
        errors.TooManyRequests, errors.InternalError, errors.ServiceUnavailable)
}
_BY_CODE: dict[int, type[errors.StatusError]] = {}
for _cls in _BY_REASON.values():
    _BY_CODE.setdefault(_cls.code, _cls)
_BY_REASON["Gone"] = errors.Gone          # upstream uses both "Expired" and "Gone" for 410


def from_status(code: int, body: Any, fallback_text: str = "") -> errors.StatusError:
    """The StatusError for an HTTP error answer (a Status object, or anything else)."""
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = body.get("reason") or ""
        code = int(body.get("code") or code)
        cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or errors.InternalError
        details = dict(body.get("details") or {})
        causes = details.pop("causes", None)
        return cls(body.get("message") or reason, details=details, causes=causes)
    cls = _BY_CODE.get(code) or (errors.BadRequest if 400 <= code < 500 else errors.InternalError)
    return cls(f"HTTP {code}: {fallback_text[:300]}")
