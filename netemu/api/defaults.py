"""Upstream defaulting (pkg/apis/*/v1/defaults.go), applied in place to a JSON dict.

The API server runs these on every create and update before validation, exactly like the
upstream scheme's defaulters, so a manifest read back through kubectl shows the same filled-in
fields a real cluster would show (``type: ClusterIP``, ``protocol: TCP``, ``targetPort``, ...).
Every function tolerates missing or oddly-typed parts: validation reports those, not defaulting.
"""

from __future__ import annotations

from typing import Any, Callable

from netemu.api.meta import Obj
from netemu.api import validate_crd, validate_job

DEFAULT_CLIENT_IP_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds


def _d(parent: Any, key: str) -> dict:
    """``parent[key]`` as a dict, created when absent (only when ``parent`` is a dict)."""
    if not isinstance(parent, dict):
        return {}
    v = parent.get(key)
    if v is None:
        v = parent[key] = {}
    return v if isinstance(v, dict) else {}


def _items(parent: Any, key: str) -> list[dict]:
    """The dict elements of the list ``parent[key]`` (others are validation's business)."""
    v = parent.get(key) if isinstance(parent, dict) else None
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


# -- core/v1 ---------------------------------------------------------------------------------

def service(obj: Obj) -> None:
    """``SetDefaults_Service`` (kubernetes v1.32 pkg/apis/core/v1/defaults.go), rule for rule.

    Defaulting runs on the *whole* object after a patch is applied, so ``sessionAffinity: None``
    clears a ``sessionAffinityConfig`` left over from ClientIP: that is what lets a user switch
    affinity off with one ``kubectl patch`` (upstream e2e "should be able to switch session
    affinity for service with type clusterIP").
    """
    spec = _d(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if config is None or client_ip is None or (
                isinstance(client_ip, dict) and client_ip.get("timeoutSeconds") is None):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    spec.setdefault("type", "ClusterIP")
    stype = spec["type"]
    for port in _items(spec, "ports"):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    if externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if stype in ("ClusterIP", "NodePort", "LoadBalancer") and spec.get("internalTrafficPolicy") is None:
        spec["internalTrafficPolicy"] = "Cluster"
    if stype == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        _lb_ingress_ip_mode(obj.get("status"))
    _service_cluster_ips(spec)


def externally_accessible(spec: Any) -> bool:
    """``service.ExternallyAccessible`` (pkg/api/v1/service/util.go): NodePort, LoadBalancer, or
    a ClusterIP Service with externalIPs -- the Services an externalTrafficPolicy applies to."""
    if not isinstance(spec, dict):
        return False
    stype = spec.get("type")
    return stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and bool(spec.get("externalIPs")))


def _lb_ingress_ip_mode(status: Any) -> None:
    """An ingress with an IP and no ipMode is a VIP (LoadBalancerIPMode, GA in v1.32)."""
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    for ingress in _items(lb, "ingress"):
        if ingress.get("ip") and ingress.get("ipMode") is None:
            ingress["ipMode"] = "VIP"


def _service_cluster_ips(spec: dict) -> None:
    """Keep clusterIP and clusterIPs[0] in step, and pick the (single-stack IPv4) families.

    Upstream does this in the service REST storage before allocation; the cluster is IPv4
    single-stack, so every Service that has cluster IPs gets SingleStack / [IPv4].
    """
    if spec.get("type") == "ExternalName":
        return
    ip, ips = spec.get("clusterIP"), spec.get("clusterIPs")
    if ip and not ips:
        spec["clusterIPs"] = [ip]
    elif ips and isinstance(ips, list) and not ip:
        spec["clusterIP"] = ips[0]
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = ["IPv4"]


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent`` (upstream rule)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(c: dict, host_network: bool) -> None:
    if isinstance(c.get("image"), str) and not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = _image_pull_policy(c["image"])
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for port in _items(c, "ports"):
        port.setdefault("protocol", "TCP")
        if host_network and not port.get("hostPort") and "containerPort" in port:
            port["hostPort"] = port["containerPort"]
    for env in _items(c, "env"):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env.get("valueFrom"), dict) else None
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(probe))
    resources = c.get("resources")
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        # SetDefaults_Pod: requests default to limits for each resource that has a limit
        requests = _d(resources, "requests")
        for name, qty in resources["limits"].items():
            requests.setdefault(name, qty)


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    host_network = bool(spec.get("hostNetwork"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _items(spec, key):
            _container(c, host_network)
    for vol in _items(spec, "volumes"):
        for source in ("configMap", "secret"):
            if isinstance(vol.get(source), dict):
                vol[source].setdefault("defaultMode", 0o644)
        if not any(k != "name" for k in vol):
            vol["emptyDir"] = {}


def pod(obj: Obj) -> None:
    pod_spec(_d(obj, "spec"))


def pod_template(template: Any) -> None:
    if isinstance(template, dict):
        pod_spec(_d(template, "spec"))


def namespace(obj: Obj) -> None:
    status = _d(obj, "status")
    status.setdefault("phase", "Active")


def node(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        # v1 conversion keeps podCIDR and podCIDRs[0] in step, so readers may use either
        if spec.get("podCIDR") and not spec.get("podCIDRs"):
            spec["podCIDRs"] = [spec["podCIDR"]]
        elif isinstance(spec.get("podCIDRs"), list) and spec["podCIDRs"] and not spec.get("podCIDR"):
            spec["podCIDR"] = spec["podCIDRs"][0]
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict):
        status.setdefault("allocatable", dict(status["capacity"]))


def endpoints(obj: Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            port.setdefault("protocol", "TCP")


def secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")


# -- other groups ------------------------------------------------------------------------------

def endpoint_slice(obj: Obj) -> None:
    for port in _items(obj, "ports"):
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")


def deployment(obj: Obj) -> None:
    spec = _d(obj, "spec")
    spec.setdefault("replicas", 1)
    strategy = _d(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _d(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    pod_template(spec.get("template"))


def replica_set(obj: Obj) -> None:
    spec = _d(obj, "spec")
    spec.setdefault("replicas", 1)
    pod_template(spec.get("template"))


def stateful_set(obj: Obj) -> None:
    """SetDefaults_StatefulSet (apps/v1, v1.32: the PVC retention policy is on by default)."""
    spec = _d(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = _d(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _d(strategy, "rollingUpdate").setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = _d(spec, "persistentVolumeClaimRetentionPolicy")
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    for claim in _items(spec, "volumeClaimTemplates"):
        claim_spec = _d(claim, "spec")
        claim_spec.setdefault("volumeMode", "Filesystem")
    pod_template(spec.get("template"))


def daemon_set(obj: Obj) -> None:
    """SetDefaults_DaemonSet (apps/v1): RollingUpdate one node at a time, no surge."""
    spec = _d(obj, "spec")
    strategy = _d(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _d(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    pod_template(spec.get("template"))


def _job(obj: Obj) -> None:
    validate_job.set_defaults(obj)
    pod_template(obj["spec"].get("template"))


RBAC_GROUP = "rbac.authorization.k8s.io"


def _binding(obj: Obj) -> None:
    role_ref = obj.get("roleRef")
    if isinstance(role_ref, dict) and not role_ref.get("apiGroup"):
        role_ref["apiGroup"] = RBAC_GROUP
    for subject in _items(obj, "subjects"):
        if "apiGroup" not in subject:
            subject["apiGroup"] = "" if subject.get("kind") == "ServiceAccount" else RBAC_GROUP


def _none(obj: Obj) -> None:
    """Kinds with nothing to default upstream (ConfigMap, Lease, Ingress, ...)."""


DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Service": service,
    "Pod": pod,
    "Namespace": namespace,
    "Node": node,
    "Endpoints": endpoints,
    "Secret": secret,
    "EndpointSlice": endpoint_slice,
    "Deployment": deployment,
    "ReplicaSet": replica_set,
    "StatefulSet": stateful_set,
    "DaemonSet": daemon_set,
    "Job": _job,
    "RoleBinding": _binding,
    "ClusterRoleBinding": _binding,
    "CustomResourceDefinition": validate_crd.set_defaults,
}


def apply_defaults(kind: str, obj: Obj) -> Obj:
    """Default ``obj`` (a ``kind`` object) in place and return it."""
    DEFAULTERS.get(kind, _none)(obj)
    return obj
