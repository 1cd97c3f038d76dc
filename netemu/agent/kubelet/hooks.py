"""Container lifecycle hooks (pure): which hook a container has and what its failure says.

Upstream v1.32 (pkg/kubelet/lifecycle/handlers.go, kuberuntime_container.go): a container's
``lifecycle.postStart`` runs right after the container started (the container counts as
running only once it succeeded; a failure kills the container, which then restarts per the
pod's restartPolicy), ``lifecycle.preStop`` right before SIGTERM when the container is stopped,
inside the grace period (termination.py has that timeline). A handler is one of:

- ``exec``: the command in the container (through the runtime, as the CRI's ExecSync), with no
  timeout of its own: it fails when it exits non-zero, and dies with its container;
- ``httpGet``: a GET from the node to ``host`` (default: the pod IP) on the port (a number or
  a container port's name); only a transport error fails it, not the status code;
- ``sleep`` (KEP-3960, PodLifecycleSleepAction, on by default since 1.30): waits ``seconds``;
- anything else (``tcpSocket`` is accepted by the API but never run) fails as upstream's
  "invalid handler".

probing.run_hook runs one (the effects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from netemu.api.meta import Obj

EVENTS = ("postStart", "preStop")
RUNNABLE = ("exec", "httpGet", "sleep")
LIFECYCLE_AGENT = "kube-lifecycle/1.32"      # httpprobe.NewRequestForHTTPGetAction(..., "lifecycle")


@dataclass(frozen=True)
class Hook:
    event: str                    # postStart | preStop
    handler: str                  # exec | httpGet | sleep | (anything else: not runnable)
    action: Obj

    def describe(self) -> str:
        """The handler as upstream's failure messages name it (Go's %v of the command)."""
        if self.handler == "exec":
            return "[" + " ".join(str(a) for a in self.action.get("command") or []) + "]"
        if self.handler == "httpGet":
            return str(self.action.get("path") or "")
        if self.handler == "sleep":
            return str(self.action.get("seconds"))
        return self.handler


def hook_of(container: Obj, event: str) -> Hook | None:
    """The container's ``lifecycle.<event>`` handler, or None."""
    if event not in EVENTS:
        raise ValueError(f"no lifecycle event {event!r} (one of {', '.join(EVENTS)})")
    handler = ((container.get("lifecycle") or {}).get(event)) or None
    if not isinstance(handler, dict):
        return None
    kind = next((k for k in RUNNABLE if handler.get(k) is not None), None)
    if kind is None:
        kind = next((k for k, v in handler.items() if v is not None), "none")
    action = handler.get(kind)
    return Hook(event, kind, action if isinstance(action, dict) else {})


def pod_ref(pod: Obj) -> str:
    """format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def failure_message(hook: Hook, container: Obj, pod: Obj, error: str, output: str = "") -> str:
    """handlers.go's message for a failed hook (the postStart Event and the container's
    status carry it; a preStop failure's Event says only "PreStopHook failed", as upstream,
    so a secret in a command's output does not leak into Events)."""
    who = f'for Container "{container.get("name", "")}" in Pod "{pod_ref(pod)}"'
    if hook.handler == "exec":
        return f"Exec lifecycle hook ({hook.describe()}) {who} failed - error: {error}, message: {go_quote(output)}"
    if hook.handler == "httpGet":
        return f"HTTP lifecycle hook ({hook.describe()}) {who} failed - error: {error}"
    if hook.handler == "sleep":
        return f"Sleep lifecycle hook ({hook.describe()}) {who} failed - error: {error}"
    return f"Cannot run handler: invalid handler: {hook.handler}"


def exec_error(argv: list, code: int, output: str) -> str:
    """The error of an exec handler that exited non-zero, as the kubelet's ExecSync gives it."""
    return f"command '{' '.join(str(a) for a in argv)}' exited with {code}: {output}"


def go_quote(text: str) -> str:
    """Go's %q of a string (double quotes, escapes), near enough for messages."""
    return json.dumps(text, ensure_ascii=False)
