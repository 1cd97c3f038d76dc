"""The default RBAC policy a kubeadm cluster has (pure data), written at every API server start.

Upstream's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy, its testdata
cluster-roles.yaml, controller-roles.yaml and the bindings at v1.32) for the roles a user meets
and the components netemu runs, plus kubeadm's own bindings (kubeadm:cluster-admins for the
admin kubeconfig, kubeadm:node-proxier for kube-proxy's ServiceAccount). Rules are written
compactly: ``R(verbs, groups, resources[, names])`` and ``N(verbs, urls)``, comma-separated.
Every object carries upstream's bootstrapping label and autoupdate annotation; ``reconcile``
says what a restart brings back (missing objects; rules and subjects of those still marked
autoupdate), like upstream's post-start hook.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io/v1"
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
ADMIN_GROUP = "kubeadm:cluster-admins"


def _split(text: str) -> list[str]:
    return [p for p in text.split(",")] if text else [""]


def R(verbs: str, groups: str, resources: str, names: str = "") -> Obj:
    rule = {"verbs": verbs.split(","), "apiGroups": _split(groups), "resources": resources.split(",")}
    if names:
        rule["resourceNames"] = names.split(",")
    return rule


def N(verbs: str, urls: str) -> Obj:
    return {"verbs": verbs.split(","), "nonResourceURLs": urls.split(",")}


RW = "create,delete,deletecollection,patch,update"
READ = "get,list,watch"
EVENTS = R("create,patch,update", ",events.k8s.io", "events")
AGG = "rbac.authorization.k8s.io/aggregate-to-"

CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [R("*", "*", "*"), N("*", "*")],
    "system:aggregate-to-admin": [
        R("create", "authorization.k8s.io", "localsubjectaccessreviews"),
        R(RW + ",get,list,watch", "rbac.authorization.k8s.io", "rolebindings,roles")],
    "system:aggregate-to-edit": [
        R(READ, "", "pods/attach,pods/exec,pods/portforward,pods/proxy,secrets,services/proxy"),
        R("impersonate", "", "serviceaccounts"),
        R(RW, "", "pods,pods/attach,pods/exec,pods/portforward,pods/proxy"),
        R("create", "", "pods/eviction"),
        R(RW, "", "configmaps,events,persistentvolumeclaims,replicationcontrollers,"
                  "replicationcontrollers/scale,secrets,serviceaccounts,services,services/proxy"),
        R("create", "", "serviceaccounts/token"),
        R(RW, "apps", "daemonsets,deployments,deployments/rollback,deployments/scale,replicasets,"
                      "replicasets/scale,statefulsets,statefulsets/scale"),
        R(RW, "autoscaling", "horizontalpodautoscalers"),
        R(RW, "batch", "cronjobs,jobs"),
        R(RW, "extensions", "daemonsets,deployments,deployments/rollback,deployments/scale,ingresses,"
                            "networkpolicies,replicasets,replicasets/scale,replicationcontrollers/scale"),
        R(RW, "policy", "poddisruptionbudgets"),
        R(RW, "networking.k8s.io", "ingresses,networkpolicies"),
        R(RW + ",get,list,watch", "coordination.k8s.io", "leases")],
    # metrics-server's role (its manifest's): the metrics API for whoever may view
    "system:aggregated-metrics-reader": [R("get,list,watch", "metrics.k8s.io", "pods,nodes")],
    "system:aggregate-to-view": [
        R(READ, "", "configmaps,endpoints,persistentvolumeclaims,persistentvolumeclaims/status,pods,"
                    "replicationcontrollers,replicationcontrollers/scale,serviceaccounts,services,services/status"),
        R(READ, "", "bindings,events,limitranges,namespaces/status,pods/log,pods/status,"
                    "replicationcontrollers/status,resourcequotas,resourcequotas/status"),
        R(READ, "", "namespaces"),
        R(READ, "discovery.k8s.io", "endpointslices"),
        R(READ, "apps", "controllerrevisions,daemonsets,daemonsets/status,deployments,deployments/scale,"
                        "deployments/status,replicasets,replicasets/scale,replicasets/status,statefulsets,"
                        "statefulsets/scale,statefulsets/status"),
        R(READ, "autoscaling", "horizontalpodautoscalers,horizontalpodautoscalers/status"),
        R(READ, "batch", "cronjobs,cronjobs/status,jobs,jobs/status"),
        R(READ, "extensions", "daemonsets,daemonsets/status,deployments,deployments/scale,deployments/status,"
                              "ingresses,ingresses/status,networkpolicies,replicasets,replicasets/scale,"
                              "replicasets/status,replicationcontrollers/scale"),
        R(READ, "policy", "poddisruptionbudgets,poddisruptionbudgets/status"),
        R(READ, "networking.k8s.io", "ingresses,ingresses/status,networkpolicies")],
    "system:auth-delegator": [R("create", "authentication.k8s.io", "tokenreviews"),
                              R("create", "authorization.k8s.io", "subjectaccessreviews")],
    "system:basic-user": [R("create", "authorization.k8s.io", "selfsubjectaccessreviews,selfsubjectrulesreviews"),
                          R("create", "authentication.k8s.io", "selfsubjectreviews")],
    "system:discovery": [N("get", "/api,/api/*,/apis,/apis/*,/healthz,/livez,/openapi,/openapi/*,/readyz,"
                                  "/version,/version/")],
    "system:public-info-viewer": [N("get", "/healthz,/livez,/readyz,/version,/version/")],
    "system:monitoring": [N("get", "/healthz,/healthz/*,/livez,/livez/*,/metrics,/metrics/slis,/readyz,/readyz/*")],
    "system:service-account-issuer-discovery": [N("get", "/.well-known/openid-configuration,/openid/v1/jwks")],
    "system:kube-controller-manager": [
        EVENTS, R("create", "coordination.k8s.io", "leases"),
        R("get,update", "coordination.k8s.io", "leases", "kube-controller-manager"),
        R("create", "", "secrets,serviceaccounts"), R("delete", "", "secrets"),
        R("get", "", "configmaps,namespaces,secrets,serviceaccounts"), R("update", "", "secrets,serviceaccounts"),
        R("create", "authentication.k8s.io", "tokenreviews"),
        R("create", "authorization.k8s.io", "subjectaccessreviews"),
        R("list,watch", "*", "*"), R("create", "", "serviceaccounts/token")],
    "system:kube-scheduler": [
        EVENTS, R("create", "coordination.k8s.io", "leases"),
        R("get,update", "coordination.k8s.io", "leases", "kube-scheduler"),
        R(READ, "", "nodes"), R("delete,get,list,watch", "", "pods"), R("create", "", "bindings,pods/binding"),
        R("patch,update", "", "pods/status"), R(READ, "", "replicationcontrollers,services"),
        R(READ, "apps,extensions", "replicasets"), R(READ, "apps", "statefulsets"),
        R(READ, "policy", "poddisruptionbudgets"), R(READ, "", "persistentvolumeclaims,persistentvolumes"),
        R("create", "authentication.k8s.io", "tokenreviews"),
        R("create", "authorization.k8s.io", "subjectaccessreviews"),
        R(READ, "storage.k8s.io", "csinodes"), R(READ, "", "namespaces"),
        R(READ, "storage.k8s.io", "csidrivers"), R(READ, "storage.k8s.io", "csistoragecapacities")],
    "system:volume-scheduler": [R("get,list,patch,update,watch", "", "persistentvolumes"),
                                R(READ, "storage.k8s.io", "storageclasses"),
                                R("get,list,patch,update,watch", "", "persistentvolumeclaims")],
    "system:kube-dns": [R("list,watch", "", "endpoints,services")],
    "system:kubelet-api-admin": [R(READ, "", "nodes"), R("proxy", "", "nodes"),
                                 R("*", "", "nodes/log,nodes/metrics,nodes/proxy,nodes/stats")],
    "system:node": [
        R("create", "authentication.k8s.io", "tokenreviews"),
        R("create", "authorization.k8s.io", "localsubjectaccessreviews,subjectaccessreviews"),
        R(READ, "", "services"), R("create,get,list,watch", "", "nodes"), R("patch,update", "", "nodes/status"),
        R("patch,update", "", "nodes"), R("create,patch,update", "", "events"), R(READ, "", "pods"),
        R("create,delete", "", "pods"), R("patch,update", "", "pods/status"), R("create", "", "pods/eviction"),
        R(READ, "", "configmaps,secrets"), R("get", "", "persistentvolumeclaims,persistentvolumes"),
        R("get", "", "endpoints"), R("create,get,list,watch", "certificates.k8s.io", "certificatesigningrequests"),
        R("create,delete,get,patch,update", "coordination.k8s.io", "leases"),
        R("get", "storage.k8s.io", "volumeattachments"), R("create", "", "serviceaccounts/token"),
        R("get,patch,update", "", "persistentvolumeclaims/status"), R(READ, "storage.k8s.io", "csidrivers"),
        R("create,delete,get,patch,update", "storage.k8s.io", "csinodes"), R(READ, "node.k8s.io", "runtimeclasses")],
    "system:node-bootstrapper": [R("create,get,list,watch", "certificates.k8s.io", "certificatesigningrequests")],
    "system:node-problem-detector": [R("get", "", "nodes"), R("patch", "", "nodes/status"), EVENTS],
    "system:node-proxier": [R("list,watch", "", "endpoints,services"), R(READ, "", "nodes"), EVENTS,
                            R("list,watch", "discovery.k8s.io", "endpointslices")],
    # the controllers netemu runs, each as its kube-system ServiceAccount (controller-roles.yaml)
    "system:controller:clusterrole-aggregation-controller": [
        R("escalate,get,list,patch,update,watch", "rbac.authorization.k8s.io", "clusterroles")],
    "system:controller:deployment-controller": [
        R("get,list,update,watch", "apps,extensions", "deployments"),
        R("update", "apps,extensions", "deployments/status"), R("update", "apps,extensions", "deployments/finalizers"),
        R("create,delete,get,list,patch,update,watch", "apps,extensions", "replicasets"),
        R("get,list,update,watch", "", "pods"), EVENTS],
    "system:controller:replicaset-controller": [
        R("get,list,update,watch", "apps,extensions", "replicasets"),
        R("update", "apps,extensions", "replicasets/status"), R("update", "apps,extensions", "replicasets/finalizers"),
        R("create,delete,list,patch,watch", "", "pods"), EVENTS],
    "system:controller:statefulset-controller": [
        R("list,watch", "", "pods"), R("get,list,watch", "apps", "statefulsets"),
        R("update", "apps", "statefulsets/status"), R("update", "apps", "statefulsets/finalizers"),
        R("get,create,delete,update,patch", "", "pods"),
        R("get,create,delete,update,patch,list,watch", "apps", "controllerrevisions"),
        R("get,create,update,delete", "", "persistentvolumeclaims"), EVENTS],
    "system:controller:daemon-set-controller": [
        R("get,list,watch", "apps,extensions", "daemonsets"),
        R("update", "apps,extensions", "daemonsets/status"), R("update", "apps,extensions", "daemonsets/finalizers"),
        R("list,watch", "", "nodes"), R("create,delete,list,patch,watch", "", "pods"),
        R("create", "", "pods/binding"),
        R("create,delete,get,list,patch,update,watch", "apps", "controllerrevisions"), EVENTS],
    "system:controller:job-controller": [
        R("get,list,patch,update,watch", "batch", "jobs"), R("update", "batch", "jobs/status"),
        R("update", "batch", "jobs/finalizers"), R("create,delete,list,patch,watch", "", "pods"), EVENTS],
    "system:controller:ttl-after-finished-controller": [R("delete,get,list,watch", "batch", "jobs"), EVENTS],
    "system:controller:endpoint-controller": [
        R(READ, "", "pods,services"), R("create,delete,get,list,update,watch", "", "endpoints"),
        R("create", "", "endpoints/restricted"), EVENTS],
    "system:controller:endpointslice-controller": [
        R(READ, "", "nodes,pods,services"), R("update", "", "services/finalizers"),
        R("create,delete,get,list,update,watch", "discovery.k8s.io", "endpointslices"), EVENTS],
    "system:controller:generic-garbage-collector": [R("delete,get,list,patch,update,watch", "*", "*"), EVENTS],
    "system:controller:namespace-controller": [
        R("delete,get,list,watch", "", "namespaces"), R("update", "", "namespaces/finalize,namespaces/status"),
        R("delete,deletecollection,get,list,watch", "*", "*")],
    "system:controller:node-controller": [
        R("delete,get,list,patch,update,watch", "", "nodes"), R("patch,update", "", "nodes/status"),
        R("patch,update", "", "pods/status"), R("delete,get,list,watch", "", "pods"), EVENTS],
    "system:controller:pod-garbage-collector": [R("delete,list,watch", "", "pods"), R(READ, "", "nodes"),
                                                R("patch", "", "pods/status")],
    "system:controller:service-account-controller": [R("create", "", "serviceaccounts"), EVENTS],
    "system:controller:service-controller": [R(READ, "", "services"), R("patch,update", "", "services/status"),
                                             R("list,watch", "", "nodes"), EVENTS],
    "system:controller:root-ca-cert-publisher": [R("create,update", "", "configmaps"), EVENTS],
    "system:controller:ttl-controller": [R("list,patch,update,watch", "", "nodes"), EVENTS],
}

AGGREGATED = {  # name -> (the label its parts carry, the labels it carries itself)
    "admin": ("admin", {}),
    "edit": ("edit", {AGG + "admin": "true"}),
    "view": ("view", {AGG + "edit": "true"}),
}
PART_LABELS = {"system:aggregate-to-admin": AGG + "admin", "system:aggregate-to-edit": AGG + "edit",
               "system:aggregate-to-view": AGG + "view", "system:aggregated-metrics-reader": AGG + "view"}

# ServiceAccounts in kube-system the controllers run as (upstream's names)
CONTROLLER_ACCOUNTS = ("clusterrole-aggregation-controller", "deployment-controller", "replicaset-controller",
                       "statefulset-controller",
                       "daemon-set-controller", "job-controller", "ttl-after-finished-controller",
                       "endpoint-controller", "endpointslice-controller", "generic-garbage-collector",
                       "namespace-controller", "node-controller", "pod-garbage-collector",
                       "service-account-controller", "service-controller", "root-ca-cert-publisher",
                       "ttl-controller")


def _meta(name: str, labels: dict[str, str] | None = None, namespace: str | None = None) -> Obj:
    md: Obj = {"name": name, "labels": {**LABELS, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}
    if namespace:
        md["namespace"] = namespace
    return md


def _subject(kind: str, name: str, namespace: str = "") -> Obj:
    if kind == "ServiceAccount":           # the API server defaults apiGroup "" for these
        return {"kind": kind, "apiGroup": "", "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}


def _binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    return {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def cluster_roles() -> list[Obj]:
    """The default ClusterRoles; admin, edit and view with their aggregated rules filled in
    (what upstream's aggregation controller writes into them)."""
    from netemu.apiserver.rbac import RbacIndex
    out = []
    for name, rules in CLUSTER_ROLES.items():
        labels = {PART_LABELS[name]: "true"} if name in PART_LABELS else None
        out.append({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": _meta(name, labels), "rules": rules})
    aggregated = [{"apiVersion": RBAC, "kind": "ClusterRole", "metadata": _meta(name, labels),
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {AGG + part: "true"}}]}}
                  for name, (part, labels) in AGGREGATED.items()]
    index = RbacIndex()
    for role in out + aggregated:
        index.put("ClusterRole", role)
    for role in aggregated:
        role["rules"] = index.cluster_role_rules(role["metadata"]["name"])
    return aggregated + out


def cluster_role_bindings() -> list[Obj]:
    g, u = (lambda n: _subject("Group", n)), (lambda n: _subject("User", n))
    out = [
        _binding("cluster-admin", "cluster-admin", [g("system:masters")]),
        _binding("system:basic-user", "system:basic-user", [g("system:authenticated")]),
        _binding("system:discovery", "system:discovery", [g("system:authenticated")]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [g("system:authenticated"), g("system:unauthenticated")]),
        _binding("system:monitoring", "system:monitoring", [g("system:monitoring")]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 [g("system:serviceaccounts")]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 [u("system:kube-controller-manager")]),
        _binding("system:kube-scheduler", "system:kube-scheduler", [u("system:kube-scheduler")]),
        _binding("system:volume-scheduler", "system:volume-scheduler", [u("system:kube-scheduler")]),
        _binding("system:kube-dns", "system:kube-dns", [_subject("ServiceAccount", "kube-dns", "kube-system")]),
        _binding("system:node", "system:node", []),      # nodes are authorized by the Node authorizer
        _binding("system:node-proxier", "system:node-proxier", [u("system:kube-proxy")]),
        # kubeadm's
        _binding("kubeadm:cluster-admins", "cluster-admin", [g(ADMIN_GROUP)]),
        _binding("kubeadm:node-proxier", "system:node-proxier",
                 [_subject("ServiceAccount", "kube-proxy", "kube-system")]),
    ]
    for sa in CONTROLLER_ACCOUNTS:
        out.append(_binding(f"system:controller:{sa}", f"system:controller:{sa}",
                            [_subject("ServiceAccount", sa, "kube-system")]))
    return out


def reconcile(current: Obj | None, wanted: Obj) -> Obj | None:
    """What to write for a default object: ``wanted`` when missing; the stored one with the
    default rules/subjects/aggregation when it still says autoupdate "true" and differs; else
    None (a user who set autoupdate "false" keeps their edit)."""
    if current is None:
        return wanted
    md = current.get("metadata") or {}
    if (md.get("annotations") or {}).get(AUTOUPDATE) != "true":
        return None
    keys = ("rules", "aggregationRule") if wanted["kind"] == "ClusterRole" else ("subjects",)
    if all(current.get(k) == wanted.get(k) for k in keys):
        return None
    out = dict(current)
    for k in keys:
        if k in wanted:
            out[k] = wanted[k]
    return out
