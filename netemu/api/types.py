"""JSON types of the fields users write most, checked the way upstream's decoder checks them.

A real API server decodes a body into Go structs before anything else, so ``replicas: "3"`` or
``ports: {port: 80}`` is a 400 BadRequest naming the field and the Go type, never a confusing
validation message. We keep no full schema (unknown fields pass, as with fieldValidation=Ignore),
only the fields below: every manifest field a kubectl user is likely to mistype.
``null`` is always accepted (Go decodes it to the zero value).
"""

from __future__ import annotations

from typing import Any

from netemu.api import errors

I32, I64, STR, BOOL, MAP, INTSTR, QTY, OBJ = ("int32", "int64", "string", "bool", "map[string]string",
                                              "intstr.IntOrString", "resource.Quantity", "object")
QMAP = ("qmap",)   # map of quantities (resources.limits / requests)

OBJECT_META = {
    "name": STR, "generateName": STR, "namespace": STR, "uid": STR, "resourceVersion": STR,
    "generation": I64, "deletionGracePeriodSeconds": I64, "labels": MAP, "annotations": MAP,
    "finalizers": [STR],
    "ownerReferences": [{"apiVersion": STR, "kind": STR, "name": STR, "uid": STR,
                         "controller": BOOL, "blockOwnerDeletion": BOOL}],
}
SELECTOR = {"matchLabels": MAP, "matchExpressions": [{"key": STR, "operator": STR, "values": [STR]}]}
PROBE = {
    "httpGet": {"path": STR, "port": INTSTR, "host": STR, "scheme": STR},
    "tcpSocket": {"port": INTSTR, "host": STR}, "exec": {"command": [STR]},
    "initialDelaySeconds": I32, "timeoutSeconds": I32, "periodSeconds": I32,
    "successThreshold": I32, "failureThreshold": I32, "terminationGracePeriodSeconds": I64,
}
CONTAINER = {
    "name": STR, "image": STR, "command": [STR], "args": [STR], "workingDir": STR,
    "imagePullPolicy": STR, "stdin": BOOL, "tty": BOOL, "terminationMessagePath": STR,
    "ports": [{"name": STR, "containerPort": I32, "hostPort": I32, "protocol": STR, "hostIP": STR}],
    "env": [{"name": STR, "value": STR, "valueFrom": OBJ}],
    "resources": {"limits": QMAP, "requests": QMAP},
    "volumeMounts": [{"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}],
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
}
POD_SPEC = {
    "containers": [CONTAINER], "initContainers": [CONTAINER], "restartPolicy": STR,
    "terminationGracePeriodSeconds": I64, "activeDeadlineSeconds": I64, "dnsPolicy": STR,
    "nodeSelector": MAP, "serviceAccountName": STR, "nodeName": STR, "hostNetwork": BOOL,
    "hostname": STR, "subdomain": STR, "schedulerName": STR, "priority": I32,
    "enableServiceLinks": BOOL, "volumes": [{"name": STR}],
    "tolerations": [{"key": STR, "operator": STR, "value": STR, "effect": STR, "tolerationSeconds": I64}],
}
POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}
WORKLOAD_SPEC = {"replicas": I32, "minReadySeconds": I32, "selector": SELECTOR, "template": POD_TEMPLATE}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Service": {"spec": {
        "type": STR, "selector": MAP, "clusterIP": STR, "clusterIPs": [STR], "externalIPs": [STR],
        "externalName": STR, "sessionAffinity": STR, "externalTrafficPolicy": STR,
        "internalTrafficPolicy": STR, "healthCheckNodePort": I32, "publishNotReadyAddresses": BOOL,
        "allocateLoadBalancerNodePorts": BOOL, "loadBalancerIP": STR, "loadBalancerClass": STR,
        "ipFamilies": [STR], "ipFamilyPolicy": STR, "loadBalancerSourceRanges": [STR],
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": I32}},
        "ports": [{"name": STR, "protocol": STR, "port": I32, "targetPort": INTSTR, "nodePort": I32,
                   "appProtocol": STR}]}},
    "Pod": {"spec": POD_SPEC},
    "Deployment": {"spec": {**WORKLOAD_SPEC, "paused": BOOL, "revisionHistoryLimit": I32,
                            "progressDeadlineSeconds": I32,
                            "strategy": {"type": STR, "rollingUpdate": {"maxUnavailable": INTSTR, "maxSurge": INTSTR}}}},
    "ReplicaSet": {"spec": WORKLOAD_SPEC},
    "StatefulSet": {"spec": {**WORKLOAD_SPEC, "serviceName": STR, "podManagementPolicy": STR,
                             "revisionHistoryLimit": I32, "ordinals": {"start": I32},
                             "updateStrategy": {"type": STR, "rollingUpdate": {"partition": I32,
                                                                               "maxUnavailable": INTSTR}},
                             "volumeClaimTemplates": [{"metadata": OBJECT_META}]}},
    "DaemonSet": {"spec": {"selector": SELECTOR, "template": POD_TEMPLATE, "minReadySeconds": I32,
                           "revisionHistoryLimit": I32,
                           "updateStrategy": {"type": STR, "rollingUpdate": {"maxUnavailable": INTSTR,
                                                                             "maxSurge": INTSTR}}}},
    "Job": {"spec": {"selector": SELECTOR, "template": POD_TEMPLATE, "parallelism": I32, "completions": I32,
                     "backoffLimit": I32, "activeDeadlineSeconds": I64, "ttlSecondsAfterFinished": I32,
                     "manualSelector": BOOL, "suspend": BOOL, "completionMode": STR}},
    "ConfigMap": {"data": MAP, "binaryData": MAP, "immutable": BOOL},
    "Secret": {"data": MAP, "stringData": MAP, "type": STR, "immutable": BOOL},
    "EndpointSlice": {"addressType": STR,
                      "endpoints": [{"addresses": [STR], "hostname": STR, "nodeName": STR, "zone": STR,
                                     "conditions": {"ready": BOOL, "serving": BOOL, "terminating": BOOL}}],
                      "ports": [{"name": STR, "protocol": STR, "port": I32, "appProtocol": STR}]},
    "Node": {"spec": {"podCIDR": STR, "podCIDRs": [STR], "unschedulable": BOOL,
                      "taints": [{"key": STR, "value": STR, "effect": STR}]}},
    "Lease": {"spec": {"holderIdentity": STR, "leaseDurationSeconds": I32, "leaseTransitions": I32}},
    "Namespace": {"spec": {"finalizers": [STR]}},
}

_INT_RANGES = {I32: (-2 ** 31, 2 ** 31 - 1), I64: (-2 ** 63, 2 ** 63 - 1)}


def _json_type(value: Any) -> str:
    """How Go's encoding/json names a JSON value in "cannot unmarshal X" messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fits(value: Any, expected: Any) -> bool:
    if expected in _INT_RANGES:
        lo, hi = _INT_RANGES[expected]
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    if expected == STR:
        return isinstance(value, str)
    if expected == BOOL:
        return isinstance(value, bool)
    if expected == MAP:
        return isinstance(value, dict) and all(isinstance(v, str) or v is None for v in value.values())
    if expected == INTSTR:
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if expected == OBJ:
        return isinstance(value, dict)
    if expected == QMAP:
        return isinstance(value, dict) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                               for v in value.values())
    return True


def _walk(value: Any, schema: Any, path: str) -> str | None:
    """The first mismatch as ``(path, message)`` text, or None."""
    if value is None:
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"cannot unmarshal {_json_type(value)} into Go struct field {path} of type object"
        for key, sub in schema.items():
            found = _walk(value.get(key), sub, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"cannot unmarshal {_json_type(value)} into Go struct field {path} of type []{_go_name(schema[0])}"
        for item in value:
            found = _walk(item, schema[0], path)
            if found:
                return found
        return None
    if not _fits(value, schema):
        return f"cannot unmarshal {_json_type(value)} into Go struct field {path} of type {_go_name(schema)}"
    return None


def _go_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return "object"
    if isinstance(schema, list):
        return "[]" + _go_name(schema[0])
    return "map[string]resource.Quantity" if schema == QMAP else schema


def check(kind: str, api_version: str, obj: dict[str, Any]) -> None:
    """Raise ``BadRequest`` (400) like upstream's decoder when a known field has the wrong type."""
    schema = {"metadata": OBJECT_META, **SCHEMAS.get(kind, {})}
    problem = _walk(obj, schema, kind)
    if problem:
        version = api_version.rpartition("/")[2]
        raise errors.BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: json: {problem}')
