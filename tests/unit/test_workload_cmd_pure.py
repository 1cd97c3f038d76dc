"""The pure parts of the workload commands: kinds, manifests, change detection, tables, exec."""

from __future__ import annotations

import json

import pytest

from netemu.agent.runtime.names import pod_netns_of
from netemu.cli.main import UsageError, main
from netemu.cli.apply_get_delete_cmd import load_manifests, qualified, render_table, resolve_kind, would_change
from netemu.cli.exec_logs_cmd import split_exec_words


@pytest.mark.parametrize("word,resource", [
    ("pods", "pods"), ("pod", "pods"), ("po", "pods"), ("Pod", "pods"), ("svc", "services"),
    ("deploy", "deployments"), ("deployments.apps", "deployments"), ("Deployment", "deployments"),
    ("no", "nodes"), ("endpointslices", "endpointslices"), ("leases.coordination.k8s.io", "leases"),
    ("rs", "replicasets"), ("ns", "namespaces"),
])
def test_resolve_kind(word, resource):
    assert resolve_kind(word).resource == resource


def test_resolve_kind_unknown_or_wrong_group():
    with pytest.raises(UsageError, match="widgets"):
        resolve_kind("widgets")
    with pytest.raises(UsageError):
        resolve_kind("deployments.batch")


def test_qualified_names_as_kubectl_prints_them():
    assert qualified(resolve_kind("deploy")) == "deployment.apps"
    assert qualified(resolve_kind("svc")) == "service"


def test_manifests_multi_document_and_lists(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\n"
                 "apiVersion: v1\nkind: PodList\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n")
    assert [o["metadata"]["name"] for o in load_manifests(str(f))] == ["a", "b"]
    assert load_manifests("-", stdin_text=json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}}))[0]["metadata"]["name"] == "c"


def test_manifests_bad(tmp_path):
    with pytest.raises(UsageError, match=r"no \*\.yaml"):
        load_manifests(str(tmp_path))
    f = tmp_path / "m.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(UsageError, match="not an object"):
        load_manifests(str(f))
    f.write_text("metadata: {name: x}\n")
    with pytest.raises(UsageError, match="apiVersion, kind"):
        load_manifests(str(f))


def _deployment(replicas=3, image="nginx"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "image": image}]}}}}


def test_would_change_ignores_server_defaults_and_fields():
    current = _deployment()
    current["metadata"].update(resourceVersion="7", uid="u", generation=2,
                               creationTimestamp="2026-01-01T00:00:00Z", namespace="default")
    current["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    current["status"] = {"replicas": 3}
    assert not would_change(current, _deployment())
    assert would_change(current, _deployment(replicas=4))
    assert would_change(current, _deployment(image="nginx:2"))
    with_label = _deployment()
    with_label["metadata"]["labels"] = {"a": "b"}
    assert would_change(current, with_label)


def test_render_table_priorities_and_namespace_column():
    table = {"columnDefinitions": [{"name": "Name", "priority": 0}, {"name": "Ready", "priority": 0},
                                   {"name": "IP", "priority": 1}],
             "rows": [{"cells": ["web-1", "1/1", "10.244.1.2"],
                       "object": {"metadata": {"namespace": "default"}}},
                      {"cells": ["a", "0/1", None], "object": {"metadata": {"namespace": "kube-system"}}}]}
    assert render_table(table).splitlines() == ["NAME    READY", "web-1   1/1", "a       0/1"]
    wide = render_table(table, wide=True, namespace_column=True).splitlines()
    assert wide[0] == "NAMESPACE     NAME    READY   IP"
    assert wide[1] == "default       web-1   1/1     10.244.1.2"
    assert wide[2] == "kube-system   a       0/1"


def test_pod_netns_name_from_uid():
    pod = {"metadata": {"uid": "3f2a9c1e-77b0-4d2e-9a51-0c8f3b2e1d44"}}
    assert pod_netns_of(pod) == "nep-3f2a9c1e77b"
    assert len(pod_netns_of(pod)) <= 15


def test_split_exec_words():
    assert split_exec_words("web", ["ip", "a"], None) == ("web", [], ["ip", "a"])
    assert split_exec_words("web", ["-n", "x", "--", "ip", "a"], None) == ("web", ["-n", "x"], ["ip", "a"])
    # `exec --node w1 -- ip -br a`: argparse put "ip" in POD
    assert split_exec_words("ip", ["-br", "a"], "w1") == (None, [], ["ip", "-br", "a"])


def test_exec_errors_before_touching_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(["exec", "--node", "w1", "--state-dir", str(tmp_path), "--", "true"]) == 2
    assert "no cluster" in capsys.readouterr().err
    (tmp_path / "cluster.json").write_text(json.dumps({"nodes": {"worker1": {"netns": "x"}}}))
    assert main(["exec", "--node", "w9", "--state-dir", str(tmp_path), "--", "true"]) == 2
    assert "worker1" in capsys.readouterr().err
    assert main(["exec", "--node", "worker1", "--state-dir", str(tmp_path)]) == 2
    assert "needs a command" in capsys.readouterr().err


def test_fallback_table_for_a_server_without_tables():
    from netemu.cli.apply_get_delete_cmd import fallback_table
    listed = {"kind": "PodList", "items": [{"metadata": {"name": "a", "namespace": "x"}},
                                           {"metadata": {"name": "bb", "namespace": "y"}}]}
    assert render_table(fallback_table(listed), namespace_column=True).splitlines() == [
        "NAMESPACE   NAME", "x           a", "y           bb"]
    assert render_table(fallback_table({"metadata": {"name": "one"}})).splitlines() == ["NAME", "one"]
