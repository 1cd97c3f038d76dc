"""`netemu proxy render` and the manifest loader behind it: files in, rules out, nothing touched."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from netemu.agent.proxy.manifests import ManifestError, load
from netemu.cli.main import main

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.50
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
"""
SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.1.5]
  nodeName: node1
- addresses: [10.244.2.5]
  nodeName: node2
"""


@pytest.fixture
def manifests(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "web.yaml").write_text(SERVICE + "---\n" + SLICE + "---\nkind: ConfigMap\nmetadata: {name: c}\n")
    (tmp_path / "sub" / "list.json").write_text(json.dumps({"kind": "List", "items": [
        {"kind": "Service", "metadata": {"name": "bad", "namespace": "default"},
         "spec": {"clusterIP": "10.96.0.51", "ports": [{"port": 99999}]}}]}))
    (tmp_path / "notes.txt").write_text("not a manifest")
    return tmp_path


def render(capsys, *argv):
    code = main(["proxy", "render", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_loader_reads_folders_multidoc_yaml_and_lists(manifests):
    m = load([manifests])
    assert [s["metadata"]["name"] for s in m.services] == ["bad", "web"]  # sub/list.json < web.yaml
    assert len(m.endpoint_slices) == 1 and len(m.files) == 2 and m.problems == []


def test_loader_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Service\nmetadata: {name: x\n")
    with pytest.raises(ManifestError, match=r"bad.yaml: invalid YAML at line \d+"):
        load([bad])
    badjson = tmp_path / "bad.json"
    badjson.write_text("{")
    with pytest.raises(ManifestError, match=r"bad.json: invalid JSON at line 1"):
        load([badjson])
    with pytest.raises(ManifestError, match="no such file"):
        load([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="no \\*.yaml"):
        load([empty])


def test_loader_skips_malformed_objects_with_reason(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("- just a list\n---\nkind: Service\nspec: {}\n---\nmetadata: {name: a}\n---\n"
                 "kind: Service\nmetadata: {name: p}\nspec: {ports: 3}\n")
    m = load([f])
    assert m.services == [] and len(m.problems) == 4
    assert all(str(f) in p for p in m.problems)


def test_render_prints_rules_and_reports_skips(manifests, capsys):
    code, out, err = render(capsys, "--node", "node1", "--node-ip", "172.18.0.2",
                            "--cluster-cidr", "10.244.0.0/16", "-f", str(manifests))
    assert code == 1                                            # rendered, one object skipped
    assert out.startswith("*filter\n") and out.endswith("COMMIT\n")
    assert "-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080" in out
    assert "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in out
    assert "99999 out of range" in err and "default/bad" in err


def test_render_clean_input_exits_zero_and_upstream_order(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(SERVICE + "---\n" + SLICE)
    code, out, _ = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"), "--upstream-order",
                          "--no-random-fully")
    assert code == 0
    assert out.splitlines()[1] == ":KUBE-NODEPORTS - [0:0]" and "--random-fully" not in out


@pytest.mark.parametrize("argv, message", [
    (["--mode", "nftables", "--service-cidr", "10.96.0.0/33"], "not a CIDR"),
    (["--service-cidr", "10.96.0.0/12"], "option of proxy mode nftables"),
    (["--mode", "bpf"], "choose one of"),
    (["--node-ip", "1.2.3"], "not an IP address"),
    (["--cluster-cidr", "10.0.0.0/33"], "not a CIDR"),
    (["--node-label", "zone"], "KEY=VALUE"),
])
def test_render_bad_flags_exit_2_with_one_line(manifests, capsys, argv, message):
    code, out, err = render(capsys, "--node", "n", "-f", str(manifests), *argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_render_malformed_file_prints_nothing(tmp_path, capsys):
    (tmp_path / "b.yaml").write_text("kind: Service\nmetadata: {name: x\n")
    code, out, err = render(capsys, "--node", "n", "-f", str(tmp_path / "b.yaml"))
    assert code == 2 and out == "" and "b.yaml: invalid YAML" in err


def test_render_save_form(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(SERVICE + "---\n" + SLICE)
    code, out, _ = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"), "--save-form")
    assert code == 0
    assert ('-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment "default/web:http cluster IP" '
            '-m tcp --dport 80 -j KUBE-SVC-') in out


def test_render_compare_against_a_save_file(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(SERVICE + "---\n" + SLICE)
    code, saved, _ = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"), "--save-form")
    (tmp_path / "node.save").write_text(saved)
    code, out, err = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"),
                            "--compare", str(tmp_path / "node.save"))
    assert code == 0 and out == "" and "0 differences" in err
    (tmp_path / "node.save").write_text(saved.replace("--dport 30080", "--dport 30081"))
    code, out, _ = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"),
                          "--compare", str(tmp_path / "node.save"))
    assert code == 1 and "nat KUBE-NODEPORTS: only in theirs:" in out and "30081" in out
    code, out, err = render(capsys, "--node", "node1", "-f", str(tmp_path / "a.yaml"),
                            "--compare", str(tmp_path / "missing.save"))
    assert code == 2 and "missing.save" in err


def test_render_reads_stdin(monkeypatch, capsys):
    listing = {"kind": "List", "items": [yaml.safe_load(SERVICE), yaml.safe_load(SLICE)]}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(listing)))
    code, out, err = render(capsys, "--node", "node1", "-f", "-")
    assert code == 0 and "default/web:http" in out and "1 files" in err
