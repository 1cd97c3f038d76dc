"""State survives a restart of ``netemu apiserver``: objects, the admin token (old kubeconfigs
keep working), and ClusterIP allocations (a taken IP stays taken)."""

from __future__ import annotations

import pytest

from netemu.testing.apiserver_process import ApiServerProcess


@pytest.mark.kubectl
def test_restart_keeps_objects_token_and_allocations(tmp_path):
    svc = tmp_path / "svc.yaml"
    svc.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n"
                   "  clusterIP: 10.96.50.50\n  ports:\n  - port: 80\n")
    first = ApiServerProcess(tmp_path / "state").start()
    try:
        (tmp_path / "a.yaml").write_text(svc.read_text().format(name="a"))
        first.kubectl("apply", "-f", str(tmp_path / "a.yaml"))
        old_kubeconfig = (tmp_path / "old-kubeconfig")
        old_kubeconfig.write_text(first.kubeconfig.read_text())
    finally:
        assert first.stop() == 0
    second = ApiServerProcess(tmp_path / "state")
    second.port = first.port
    second.start()
    try:
        ip = second.kubectl("get", "svc", "a", "-o", "jsonpath={.spec.clusterIP}", kubeconfig=old_kubeconfig).stdout
        assert ip == "10.96.50.50"
        (tmp_path / "b.yaml").write_text(svc.read_text().format(name="b"))
        result = second.kubectl("apply", "-f", str(tmp_path / "b.yaml"), check=False)
        assert result.returncode != 0 and "10.96.50.50" in result.stderr and "is invalid" in result.stderr
    finally:
        assert second.stop() == 0
