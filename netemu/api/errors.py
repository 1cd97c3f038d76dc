"""API errors as Kubernetes ``Status`` objects.

Every layer (object model, store, API server, client) raises these, so a client mistake found
anywhere reaches the user as the same 4xx Status upstream would send, with field-level causes.
"""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """An error with an HTTP code and a Kubernetes ``reason`` (metav1.StatusReason)."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 causes: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes

    def status(self) -> dict[str, Any]:
        """The ``Status`` object a Kubernetes API server returns for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(StatusError):
    code, reason = 400, "BadRequest"


class Unauthorized(StatusError):
    code, reason = 401, "Unauthorized"


class Forbidden(StatusError):
    code, reason = 403, "Forbidden"


class NotFound(StatusError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(StatusError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(StatusError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(StatusError):
    code, reason = 409, "AlreadyExists"


class Conflict(StatusError):
    code, reason = 409, "Conflict"


class Gone(StatusError):
    """A watch or list asked for a resourceVersion older than the kept history."""

    code, reason = 410, "Expired"


class RequestEntityTooLarge(StatusError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(StatusError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(StatusError):
    """422: the object failed validation. ``causes`` carry one entry per bad field."""

    code, reason = 422, "Invalid"


class TooManyRequests(StatusError):
    code, reason = 429, "TooManyRequests"


class InternalError(StatusError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(StatusError):
    code, reason = 503, "ServiceUnavailable"


def field_cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One entry of ``details.causes`` (upstream field.Error rendered by the API server)."""
    return {"reason": reason, "message": message, "field": field}


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> Invalid:
    """Build the 422 the way upstream words it: ``Service "web" is invalid: spec.ports[0].port: ...``."""
    summary = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    qualified = f"{kind}.{group}" if group else kind
    return Invalid(f'{qualified} "{name}" is invalid: {summary}',
                   details={"name": name, "group": group, "kind": kind}, causes=causes)
