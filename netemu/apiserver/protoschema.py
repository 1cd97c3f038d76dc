"""Protobuf field numbers of the messages kubectl's typed clients send (k8s.io/api generated.proto).

Only what ``kubectl create <generator>`` writes for the kinds below, plus the common metadata;
``protobuf`` refuses anything else by name. Types: string, int, bool, bytes (base64 in JSON),
time (metav1.Time), quantity, intstr (IntOrString), or another message's name. ``pointer``
marks Go pointer fields, whose zero value is meaningful and kept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    repeated: bool = False
    pointer: bool = False
    map_of: str = ""          # a map<string, map_of> (entries: key = 1, value = 2)


def F(name: str, type_: str = "string", *, rep: bool = False, ptr: bool = False) -> Field:
    return Field(name, type_, rep, ptr)


def M(name: str, value: str = "string") -> Field:
    return Field(name, "map", map_of=value)


MESSAGES: dict[str, dict[int, Field]] = {
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "ObjectMeta": {1: F("name"), 2: F("generateName"), 3: F("namespace"), 4: F("selfLink"), 5: F("uid"),
                   6: F("resourceVersion"), 7: F("generation", "int"), 8: F("creationTimestamp", "time"),
                   9: F("deletionTimestamp", "time"), 10: F("deletionGracePeriodSeconds", "int", ptr=True),
                   11: M("labels"), 12: M("annotations"), 13: F("ownerReferences", "OwnerReference", rep=True),
                   14: F("finalizers", rep=True)},
    "OwnerReference": {1: F("kind"), 3: F("name"), 4: F("uid"), 5: F("apiVersion"),
                       6: F("controller", "bool", ptr=True), 7: F("blockOwnerDeletion", "bool", ptr=True)},
    "LabelSelector": {1: M("matchLabels"), 2: F("matchExpressions", "LabelSelectorRequirement", rep=True)},
    "LabelSelectorRequirement": {1: F("key"), 2: F("operator"), 3: F("values", rep=True)},
    # k8s.io/api/core/v1
    "ConfigMap": {1: F("metadata", "ObjectMeta"), 2: M("data"), 3: M("binaryData", "bytes"),
                  4: F("immutable", "bool", ptr=True)},
    "Secret": {1: F("metadata", "ObjectMeta"), 2: M("data", "bytes"), 3: F("type"), 4: M("stringData"),
               5: F("immutable", "bool", ptr=True)},
    "Namespace": {1: F("metadata", "ObjectMeta"), 2: F("spec", "NamespaceSpec"), 3: F("status", "NamespaceStatus")},
    "NamespaceSpec": {1: F("finalizers", rep=True)},
    "NamespaceStatus": {1: F("phase")},
    "ServiceAccount": {1: F("metadata", "ObjectMeta"), 2: F("secrets", "ObjectReference", rep=True),
                       3: F("imagePullSecrets", "LocalObjectReference", rep=True),
                       4: F("automountServiceAccountToken", "bool", ptr=True)},
    "ObjectReference": {1: F("kind"), 2: F("namespace"), 3: F("name"), 4: F("uid"), 5: F("apiVersion"),
                        6: F("resourceVersion"), 7: F("fieldPath")},
    "LocalObjectReference": {1: F("name")},
    "Service": {1: F("metadata", "ObjectMeta"), 2: F("spec", "ServiceSpec"), 3: F("status", "ServiceStatus")},
    "ServiceSpec": {1: F("ports", "ServicePort", rep=True), 2: M("selector"), 3: F("clusterIP"), 4: F("type"),
                    5: F("externalIPs", rep=True), 7: F("sessionAffinity"), 8: F("loadBalancerIP"),
                    9: F("loadBalancerSourceRanges", rep=True), 10: F("externalName"),
                    11: F("externalTrafficPolicy"), 12: F("healthCheckNodePort", "int"),
                    13: F("publishNotReadyAddresses", "bool"), 17: F("ipFamilyPolicy", ptr=True),
                    18: F("clusterIPs", rep=True), 19: F("ipFamilies", rep=True),
                    20: F("allocateLoadBalancerNodePorts", "bool", ptr=True),
                    21: F("loadBalancerClass", ptr=True), 22: F("internalTrafficPolicy", ptr=True)},
    "ServicePort": {1: F("name"), 2: F("protocol"), 3: F("port", "int"), 4: F("targetPort", "intstr"),
                    5: F("nodePort", "int"), 6: F("appProtocol", ptr=True)},
    "ServiceStatus": {1: F("loadBalancer", "LoadBalancerStatus")},
    "LoadBalancerStatus": {1: F("ingress", "LoadBalancerIngress", rep=True)},
    "LoadBalancerIngress": {1: F("ip"), 2: F("hostname")},
    "PodTemplateSpec": {1: F("metadata", "ObjectMeta"), 2: F("spec", "PodSpec")},
    "PodSpec": {2: F("containers", "Container", rep=True), 3: F("restartPolicy"),
                4: F("terminationGracePeriodSeconds", "int", ptr=True), 6: F("dnsPolicy"),
                7: M("nodeSelector"), 8: F("serviceAccountName"), 9: F("serviceAccount"), 10: F("nodeName"),
                11: F("hostNetwork", "bool"), 12: F("hostPID", "bool"), 13: F("hostIPC", "bool"), 15: F("imagePullSecrets", "LocalObjectReference", rep=True),
                16: F("hostname"), 17: F("subdomain"), 19: F("schedulerName"),
                20: F("initContainers", "Container", rep=True),
                21: F("automountServiceAccountToken", "bool", ptr=True), 24: F("priorityClassName"),
                25: F("priority", "int", ptr=True), 30: F("enableServiceLinks", "bool", ptr=True)},
    "Container": {1: F("name"), 2: F("image"), 3: F("command", rep=True), 4: F("args", rep=True),
                  5: F("workingDir"), 6: F("ports", "ContainerPort", rep=True), 7: F("env", "EnvVar", rep=True),
                  8: F("resources", "ResourceRequirements"), 13: F("terminationMessagePath"),
                  14: F("imagePullPolicy"), 16: F("stdin", "bool"), 17: F("stdinOnce", "bool"), 18: F("tty", "bool"),
                  20: F("terminationMessagePolicy")},
    "ContainerPort": {1: F("name"), 2: F("hostPort", "int"), 3: F("containerPort", "int"), 4: F("protocol"),
                      5: F("hostIP")},
    "EnvVar": {1: F("name"), 2: F("value")},
    "ResourceRequirements": {1: M("limits", "quantity"), 2: M("requests", "quantity")},
    # k8s.io/api/apps/v1
    "Deployment": {1: F("metadata", "ObjectMeta"), 2: F("spec", "DeploymentSpec"), 3: F("status", "DeploymentStatus")},
    "DeploymentSpec": {1: F("replicas", "int", ptr=True), 2: F("selector", "LabelSelector"),
                       3: F("template", "PodTemplateSpec"), 4: F("strategy", "DeploymentStrategy"),
                       5: F("minReadySeconds", "int"), 6: F("revisionHistoryLimit", "int", ptr=True),
                       7: F("paused", "bool"), 9: F("progressDeadlineSeconds", "int", ptr=True)},
    "DeploymentStrategy": {1: F("type"), 2: F("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: F("maxUnavailable", "intstr", ptr=True), 2: F("maxSurge", "intstr", ptr=True)},
    "DeploymentStatus": {1: F("observedGeneration", "int"), 2: F("replicas", "int"), 3: F("updatedReplicas", "int"),
                         4: F("availableReplicas", "int"), 5: F("unavailableReplicas", "int"),
                         7: F("readyReplicas", "int"), 8: F("collisionCount", "int", ptr=True)},
    # k8s.io/api/batch/v1 (kubectl create job)
    "Job": {1: F("metadata", "ObjectMeta"), 2: F("spec", "JobSpec"), 3: F("status", "JobStatus")},
    "JobSpec": {1: F("parallelism", "int", ptr=True), 2: F("completions", "int", ptr=True),
                3: F("activeDeadlineSeconds", "int", ptr=True), 4: F("selector", "LabelSelector"),
                5: F("manualSelector", "bool", ptr=True), 6: F("template", "PodTemplateSpec"),
                7: F("backoffLimit", "int", ptr=True), 8: F("ttlSecondsAfterFinished", "int", ptr=True),
                9: F("completionMode", ptr=True), 10: F("suspend", "bool", ptr=True),
                14: F("podReplacementPolicy", ptr=True)},
    "JobStatus": {4: F("active", "int"), 5: F("succeeded", "int"), 6: F("failed", "int"),
                  7: F("completedIndexes"), 8: F("uncountedTerminatedPods", "UncountedTerminatedPods"),
                  9: F("ready", "int", ptr=True), 10: F("failedIndexes", ptr=True),
                  11: F("terminating", "int", ptr=True)},
    "UncountedTerminatedPods": {1: F("succeeded", rep=True), 2: F("failed", rep=True)},
    # k8s.io/api/rbac/v1
    "Role": {1: F("metadata", "ObjectMeta"), 2: F("rules", "PolicyRule", rep=True)},
    "ClusterRole": {1: F("metadata", "ObjectMeta"), 2: F("rules", "PolicyRule", rep=True)},
    "PolicyRule": {1: F("verbs", rep=True), 2: F("apiGroups", rep=True), 3: F("resources", rep=True),
                   4: F("resourceNames", rep=True), 5: F("nonResourceURLs", rep=True)},
    "RoleBinding": {1: F("metadata", "ObjectMeta"), 2: F("subjects", "Subject", rep=True), 3: F("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: F("metadata", "ObjectMeta"), 2: F("subjects", "Subject", rep=True),
                           3: F("roleRef", "RoleRef")},
    "Subject": {1: F("kind"), 2: F("apiGroup"), 3: F("name"), 4: F("namespace")},
    "RoleRef": {1: F("apiGroup"), 2: F("kind"), 3: F("name")},
    # k8s.io/api/authentication/v1 and authorization/v1 (kubectl auth whoami / can-i, create token)
    # the (empty) status a client sends with its question
    "UserInfo": {1: F("username"), 2: F("uid"), 3: F("groups", rep=True)},
    "SelfSubjectReviewStatus": {1: F("userInfo", "UserInfo")},
    "TokenReviewStatus": {1: F("authenticated", "bool"), 2: F("user", "UserInfo"), 3: F("error"),
                          4: F("audiences", rep=True)},
    "TokenRequestStatus": {1: F("token"), 2: F("expirationTimestamp", "time")},
    "SubjectAccessReviewStatus": {1: F("allowed", "bool"), 2: F("reason"), 3: F("evaluationError"),
                                  4: F("denied", "bool")},
    "SubjectRulesReviewStatus": {3: F("incomplete", "bool"), 4: F("evaluationError")},
    "TokenRequest": {1: F("metadata", "ObjectMeta"), 2: F("spec", "TokenRequestSpec"), 3: F("status", "TokenRequestStatus")},
    "TokenRequestSpec": {1: F("audiences", rep=True), 3: F("boundObjectRef", "BoundObjectReference"),
                         4: F("expirationSeconds", "int", ptr=True)},
    "BoundObjectReference": {1: F("kind"), 2: F("apiVersion"), 3: F("name"), 4: F("uid")},
    "TokenReview": {1: F("metadata", "ObjectMeta"), 2: F("spec", "TokenReviewSpec"), 3: F("status", "TokenReviewStatus")},
    "TokenReviewSpec": {1: F("token"), 2: F("audiences", rep=True)},
    "SelfSubjectReview": {1: F("metadata", "ObjectMeta"), 2: F("status", "SelfSubjectReviewStatus")},
    "SelfSubjectAccessReview": {1: F("metadata", "ObjectMeta"), 2: F("spec", "SelfSubjectAccessReviewSpec"), 3: F("status", "SubjectAccessReviewStatus")},
    "SelfSubjectAccessReviewSpec": {1: F("resourceAttributes", "ResourceAttributes"),
                                    2: F("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {1: F("namespace"), 2: F("verb"), 3: F("group"), 4: F("version"), 5: F("resource"),
                           6: F("subresource"), 7: F("name")},
    "NonResourceAttributes": {1: F("path"), 2: F("verb")},
    "SelfSubjectRulesReview": {1: F("metadata", "ObjectMeta"), 2: F("spec", "SelfSubjectRulesReviewSpec"),
                               3: F("status", "SubjectRulesReviewStatus")},
    "SelfSubjectRulesReviewSpec": {1: F("namespace")},
    "SubjectAccessReview": {1: F("metadata", "ObjectMeta"), 2: F("spec", "SubjectAccessReviewSpec"), 3: F("status", "SubjectAccessReviewStatus")},
    "SubjectAccessReviewSpec": {1: F("resourceAttributes", "ResourceAttributes"),
                                2: F("nonResourceAttributes", "NonResourceAttributes"), 3: F("user"),
                                4: F("groups", rep=True), 6: F("uid")},
}

# (apiVersion, kind) of a body -> its top-level message
KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret", ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount", ("v1", "Service"): "Service",
    ("apps/v1", "Deployment"): "Deployment", ("batch/v1", "Job"): "Job",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role", ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
}
