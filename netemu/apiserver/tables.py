"""Server-side Table output (meta.k8s.io/v1 Table) with upstream's columns (pure).

kubectl asks for ``application/json;as=Table;g=meta.k8s.io;v=v1`` and prints the cells as they
come, so ``kubectl get deploy,svc -o wide`` looks like it does against a real cluster. Columns and
cell formats follow pkg/printers/internalversion/printers.go; kinds without a printer get
upstream-like NAME and AGE columns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from netemu.api.meta import Obj
from netemu.apiserver import custom_columns
from netemu.apiserver.scale import selector_string

Column = tuple[str, str, int]          # name, type, priority (1 = only with -o wide)


def accepts_table(accept: str | None) -> bool:
    """Whether the Accept header asks for a meta.k8s.io Table (v1 or v1beta1)."""
    for part in (accept or "").split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
                  for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: 5s, 3m20s, 12m, 5h3m, 3d4h, 400d, 2y10d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(obj: Obj, now: dt.datetime) -> str:
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


def _containers(o: Obj) -> tuple[str, str]:
    cs = (((_spec(o).get("template") or {}).get("spec")) or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _or_none(text: str) -> str:
    return text if text else "<none>"


def _service_external_ip(o: Obj) -> str:
    spec, kind = _spec(o), _spec(o).get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind == "ExternalName":
        return spec.get("externalName", "")
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in (_status(o).get("loadBalancer") or {}).get("ingress") or []]
        ips = [i for i in ingress if i] + external
        return ",".join(ips) if ips else "<pending>"
    return ",".join(external) if external else "<none>"


def _service_ports(o: Obj) -> str:
    out = []
    for p in _spec(o).get("ports") or []:
        proto = p.get("protocol", "TCP")
        out.append(f"{p.get('port')}:{p['nodePort']}/{proto}" if p.get("nodePort") else f"{p.get('port')}/{proto}")
    return ",".join(out) if out else "<none>"


def _service(o: Obj, now: dt.datetime) -> list[Any]:
    sel = _spec(o).get("selector") or {}
    return [_spec(o).get("type", "ClusterIP"), _or_none(_spec(o).get("clusterIP", "")), _service_external_ip(o),
            _service_ports(o), age(o, now), _or_none(",".join(f"{k}={v}" for k, v in sorted(sel.items())))]


def _deployment(o: Obj, now: dt.datetime) -> list[Any]:
    st, names, images = _status(o), *_containers(o)
    return [f"{st.get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), age(o, now), names, images,
            _or_none(selector_string(_spec(o).get("selector")))]


def _replicaset(o: Obj, now: dt.datetime) -> list[Any]:
    st, names, images = _status(o), *_containers(o)
    return [_spec(o).get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0), age(o, now),
            names, images, _or_none(selector_string(_spec(o).get("selector")))]


def _statefulset(o: Obj, now: dt.datetime) -> list[Any]:
    names, images = _containers(o)
    return [f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}", age(o, now), names, images]


def _daemonset(o: Obj, now: dt.datetime) -> list[Any]:
    st, names, images = _status(o), *_containers(o)
    node_selector = ((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            _or_none(",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))), age(o, now),
            names, images, _or_none(selector_string(_spec(o).get("selector")))]


def _job(o: Obj, now: dt.datetime) -> list[Any]:
    """printJob: succeeded/completions, how long it ran (or runs), the first telling condition."""
    st, spec, names, images = _status(o), _spec(o), *_containers(o)
    if spec.get("completions") is not None:
        completions = f"{st.get('succeeded', 0)}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{st.get('succeeded', 0)}/1 of {spec['parallelism']}"
    else:
        completions = f"{st.get('succeeded', 0)}/1"
    start, end = _parse(st.get("startTime")), _parse(st.get("completionTime"))
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    true = {c.get("type") for c in st.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in true:
        status = "Complete"
    elif "Failed" in true:
        status = "Failed"
    elif (o.get("metadata") or {}).get("deletionTimestamp"):
        status = "Terminating"
    elif "Suspended" in true:
        status = "Suspended"
    elif "FailureTarget" in true:
        status = "FailureTarget"
    else:
        status = "Running"
    return [status, completions, duration, age(o, now), names, images,
            _or_none(selector_string(spec.get("selector")))]


def _parse(ts: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) if isinstance(ts, str) else None
    except ValueError:
        return None


def _controller_revision(o: Obj, now: dt.datetime) -> list[Any]:
    ref = next((r for r in (o.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)
    owner = "<none>"
    if ref:
        group = ref.get("apiVersion", "").split("/")[0] if "/" in ref.get("apiVersion", "") else ""
        owner = f"{ref.get('kind', '').lower()}.{group}/{ref.get('name')}" if group else \
            f"{ref.get('kind', '').lower()}/{ref.get('name')}"
    return [owner, o.get("revision", 0), age(o, now)]


def _terminated_reason(term: Obj) -> str:
    if term.get("reason"):
        return term["reason"]
    return f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"


def _init_status(o: Obj) -> str | None:
    """``Init:1/3``, ``Init:CrashLoopBackOff``... while init containers run (upstream printPod)."""
    inits = _status(o).get("initContainerStatuses") or []
    total = len(_spec(o).get("initContainers") or [])
    for i, cs in enumerate(inits):
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting") or {}
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if term is not None:
            return "Init:" + _terminated_reason(term)
        if waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{i}/{total}"
    return None


def _pod_status(o: Obj) -> tuple[str, int]:
    """(STATUS column, ready containers) as upstream's printPod computes them."""
    st = _status(o)
    reason = st.get("reason") or st.get("phase") or "Pending"
    ready, has_running = 0, False
    init = _init_status(o)
    if init is not None:
        reason = init
    else:
        for cs in reversed(st.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated") is not None:
                reason = _terminated_reason(state["terminated"])
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            conditions = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
            reason = "Running" if conditions.get("Ready") == "True" else "NotReady"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        if st.get("reason") == "NodeLost":
            reason = "Unknown"
        elif st.get("phase") not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready


def _pod(o: Obj, now: dt.datetime) -> list[Any]:
    st = _status(o)
    statuses = st.get("containerStatuses") or []
    total = len(_spec(o).get("containers") or [])
    status, ready = _pod_status(o)
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    gates = _spec(o).get("readinessGates") or []
    conditions = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    gates_ready = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
    return [f"{ready}/{total}", status, restarts, age(o, now), _or_none(st.get("podIP", "")),
            _or_none(_spec(o).get("nodeName", "")), _or_none(st.get("nominatedNodeName", "")),
            f"{gates_ready}/{len(gates)}" if gates else "<none>"]


def _node(o: Obj, now: dt.datetime) -> list[Any]:
    st, labels = _status(o), (o.get("metadata") or {}).get("labels") or {}
    cond = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    status = {"True": "Ready", "False": "NotReady"}.get(cond.get("Ready", ""), "Unknown")
    if _spec(o).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    addrs = st.get("addresses") or []
    ip = lambda t: _or_none(",".join(a.get("address", "") for a in addrs if a.get("type") == t))  # noqa: E731
    info = st.get("nodeInfo") or {}
    return [status, ",".join(roles) or "<none>", age(o, now), info.get("kubeletVersion", ""),
            ip("InternalIP"), ip("ExternalIP"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "<unknown>")]


def _endpoints(o: Obj, now: dt.datetime) -> list[Any]:
    pairs = [f"{a.get('ip')}:{p.get('port')}" for s in o.get("subsets") or []
             for p in (s.get("ports") or [{}]) for a in s.get("addresses") or []]
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [text or "<none>", age(o, now)]


def _endpointslice(o: Obj, now: dt.datetime) -> list[Any]:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    text = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o.get("addressType", ""), ports, text or "<unset>", age(o, now)]


def _since(text: str | None, now: dt.datetime) -> str:
    if not text:
        return "<unknown>"
    return age({"metadata": {"creationTimestamp": text}}, now)


def _event(o: Obj, now: dt.datetime) -> list[Any]:
    """Upstream's event columns: LAST SEEN first, the name only with -o wide."""
    inv, src = o.get("involvedObject") or {}, o.get("source") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o.get("firstTimestamp") \
        or (o.get("metadata") or {}).get("creationTimestamp")
    first = o.get("firstTimestamp") or o.get("eventTime") or last
    source = ", ".join(p for p in (src.get("component") or o.get("reportingComponent"), src.get("host")) if p)
    return [_since(last, now), o.get("type", ""), o.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}", inv.get("fieldPath", ""),
            source, o.get("message", ""), _since(first, now), o.get("count", 1),
            (o.get("metadata") or {}).get("name", "")]


def _ingress(o: Obj, now: dt.datetime) -> list[Any]:
    spec = _spec(o)
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lb = [i.get("ip") or i.get("hostname") for i in ((_status(o).get("loadBalancer") or {}).get("ingress") or [])]
    ports = "80, 443" if spec.get("tls") else "80"
    return [spec.get("ingressClassName") or "<none>", ",".join(hosts) or "*", ",".join(x for x in lb if x),
            ports, age(o, now)]


def _binding(o: Obj, now: dt.datetime) -> list[Any]:
    ref = o.get("roleRef") or {}
    subjects = o.get("subjects") or []
    of = lambda kind: ",".join(  # noqa: E731
        (f"{s.get('namespace')}/{s.get('name')}" if kind == "ServiceAccount" else s.get("name", ""))
        for s in subjects if s.get("kind") == kind)
    return [f"{ref.get('kind', '')}/{ref.get('name', '')}", age(o, now), of("User"), of("Group"),
            of("ServiceAccount")]


S, I = "string", "integer"
_BINDING_COLUMNS: list[Column] = [("Role", S, 0), ("Age", S, 0), ("Users", S, 1), ("Groups", S, 1),
                                  ("ServiceAccounts", S, 1)]
def _apiservice(o: Obj, now: dt.datetime) -> list[Any]:
    """kube-aggregator's columns: the Service it proxies to (or Local) and its Available condition."""
    svc = _spec(o).get("service")
    available = next((c for c in _status(o).get("conditions") or [] if c.get("type") == "Available"), {})
    shown = available.get("status", "Unknown")
    if shown != "True" and available.get("reason"):
        shown += f" ({available['reason']})"
    return [f"{svc.get('namespace')}/{svc.get('name')}" if svc else "Local", shown, age(o, now)]


_CREATED_AT: tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]] = (
    [("Created At", "date", 0)], lambda o, now: [(o.get("metadata") or {}).get("creationTimestamp", "")])
# Kinds whose columns do not start with the name (the cells include it where upstream puts it).
OWN_NAME_COLUMN: dict[str, tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]]] = {
    "Event": ([("Last Seen", S, 0), ("Type", S, 0), ("Reason", S, 0), ("Object", S, 0), ("Subobject", S, 1),
               ("Source", S, 1), ("Message", S, 0), ("First Seen", S, 1), ("Count", I, 1), ("Name", S, 1)], _event),
}
PRINTERS: dict[str, tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]]] = {
    "Service": ([("Type", S, 0), ("Cluster-IP", S, 0), ("External-IP", S, 0), ("Port(s)", S, 0),
                 ("Age", S, 0), ("Selector", S, 1)], _service),
    "Deployment": ([("Ready", S, 0), ("Up-to-date", I, 0), ("Available", I, 0), ("Age", S, 0),
                    ("Containers", S, 1), ("Images", S, 1), ("Selector", S, 1)], _deployment),
    "ReplicaSet": ([("Desired", I, 0), ("Current", I, 0), ("Ready", I, 0), ("Age", S, 0),
                    ("Containers", S, 1), ("Images", S, 1), ("Selector", S, 1)], _replicaset),
    "StatefulSet": ([("Ready", S, 0), ("Age", S, 0), ("Containers", S, 1), ("Images", S, 1)], _statefulset),
    "Job": ([("Status", S, 0), ("Completions", S, 0), ("Duration", S, 0), ("Age", S, 0), ("Containers", S, 1),
             ("Images", S, 1), ("Selector", S, 1)], _job),
    "DaemonSet": ([("Desired", I, 0), ("Current", I, 0), ("Ready", I, 0), ("Up-to-date", I, 0),
                   ("Available", I, 0), ("Node Selector", S, 0), ("Age", S, 0), ("Containers", S, 1),
                   ("Images", S, 1), ("Selector", S, 1)], _daemonset),
    "ControllerRevision": ([("Controller", S, 0), ("Revision", I, 0), ("Age", S, 0)], _controller_revision),
    "Pod": ([("Ready", S, 0), ("Status", S, 0), ("Restarts", S, 0), ("Age", S, 0), ("IP", S, 1),
             ("Node", S, 1), ("Nominated Node", S, 1), ("Readiness Gates", S, 1)], _pod),
    "Node": ([("Status", S, 0), ("Roles", S, 0), ("Age", S, 0), ("Version", S, 0), ("Internal-IP", S, 1),
              ("External-IP", S, 1), ("OS-Image", S, 1), ("Kernel-Version", S, 1),
              ("Container-Runtime", S, 1)], _node),
    "Namespace": ([("Status", S, 0), ("Age", S, 0)],
                  lambda o, now: [_status(o).get("phase", "Active"), age(o, now)]),
    "ConfigMap": ([("Data", I, 0), ("Age", S, 0)],
                  lambda o, now: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o, now)]),
    "Secret": ([("Type", S, 0), ("Data", I, 0), ("Age", S, 0)],
               lambda o, now: [o.get("type", "Opaque"), len(o.get("data") or {}), age(o, now)]),
    "Endpoints": ([("Endpoints", S, 0), ("Age", S, 0)], _endpoints),
    "EndpointSlice": ([("AddressType", S, 0), ("Ports", S, 0), ("Endpoints", S, 0), ("Age", S, 0)],
                      _endpointslice),
    "Lease": ([("Holder", S, 0), ("Age", S, 0)],
              lambda o, now: [_spec(o).get("holderIdentity", ""), age(o, now)]),
    "ServiceAccount": ([("Secrets", I, 0), ("Age", S, 0)],
                       lambda o, now: [len(o.get("secrets") or []), age(o, now)]),
    "Ingress": ([("Class", S, 0), ("Hosts", S, 0), ("Address", S, 0), ("Ports", S, 0), ("Age", S, 0)], _ingress),
    "IngressClass": ([("Controller", S, 0), ("Parameters", S, 0), ("Age", S, 0)],
                     lambda o, now: [_spec(o).get("controller", ""), "<none>", age(o, now)]),
    "RoleBinding": (_BINDING_COLUMNS, _binding),
    "ClusterRoleBinding": (_BINDING_COLUMNS, _binding),
    "Role": _CREATED_AT,
    "CustomResourceDefinition": _CREATED_AT,
    "ClusterRole": _CREATED_AT,
    "APIService": ([("Service", S, 0), ("Available", S, 0), ("Age", S, 0)], _apiservice),
    "NodeMetrics": ([("CPU", S, 0), ("Memory", S, 0), ("Window", S, 0)],
                    lambda o, now: [(o.get("usage") or {}).get("cpu", ""), (o.get("usage") or {}).get("memory", ""),
                                    o.get("window", "")]),
    "PodMetrics": ([("CPU", S, 0), ("Memory", S, 0), ("Window", S, 0)],
                   lambda o, now: [",".join(c["usage"].get("cpu", "") for c in o.get("containers") or []),
                                   ",".join(c["usage"].get("memory", "") for c in o.get("containers") or []),
                                   o.get("window", "")]),
}
_DEFAULT: tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]] = (
    [("Age", S, 0)], lambda o, now: [age(o, now)])


def column_definitions(kind: str) -> list[dict[str, Any]]:
    if kind in OWN_NAME_COLUMN:
        columns = OWN_NAME_COLUMN[kind][0]
    else:
        columns = [("Name", S, 0)] + PRINTERS.get(kind, _DEFAULT)[0]
    return [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, t, p in columns]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def row(kind: str, obj: Obj, now: dt.datetime, include: str = "Metadata", custom: Any = None) -> Obj:
    if custom is not None:
        cells = custom_columns.cells(custom, obj, now)
    elif kind in OWN_NAME_COLUMN:
        cells = OWN_NAME_COLUMN[kind][1](obj, now)
    else:
        cells = [(obj.get("metadata") or {}).get("name", "")] + PRINTERS.get(kind, _DEFAULT)[1](obj, now)
    out: Obj = {"cells": cells}
    ro = _row_object(obj, include)
    if ro is not None:
        out["object"] = ro
    return out


def table(kind: str, objs: list[Obj], now: dt.datetime, *, resource_version: str = "",
          continue_token: str = "", include: str = "Metadata", headers: bool = True, custom: Any = None) -> Obj:
    """A Table of ``objs``; ``headers`` False leaves out the column definitions (watch events);
    ``custom`` is a custom resource's CustomInfo (its CRD's printer columns)."""
    meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": ((custom_columns.definitions(custom) if custom is not None
                                   else column_definitions(kind)) if headers else []),
            "rows": [row(kind, o, now, include, custom) for o in objs]}
