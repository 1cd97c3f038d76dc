"""pods/log in the API server (pure parts): which container, which kubelet URL."""

import pytest

from netemu.api import errors
from netemu.apiserver import podlog

POD = {"metadata": {"name": "web", "namespace": "ns1"},
       "spec": {"nodeName": "n1", "initContainers": [{"name": "setup"}], "containers": [{"name": "app"}]}}
NODE = {"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                                             {"type": "InternalIP", "address": "172.18.0.3"}]}}


def test_container_defaults_to_the_only_one_and_init_containers_are_valid():
    assert podlog.pick_container(POD, None) == "app"
    assert podlog.pick_container(POD, "setup") == "setup"
    with pytest.raises(errors.BadRequest, match="container nope is not valid for pod web"):
        podlog.pick_container(POD, "nope")
    two = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    with pytest.raises(errors.BadRequest, match=r"choose one of: \[a b\]"):
        podlog.pick_container(two, None)


def test_kubelet_url_passes_on_known_parameters_only():
    url = podlog.kubelet_url(POD, NODE, "app", {"tailLines": "10", "follow": "true", "container": "app",
                                                "evil": "x", "limitBytes": "5&x=1"})
    assert url == "http://172.18.0.3:10250/containerLogs/ns1/web/app?tailLines=10&follow=true"
    with pytest.raises(errors.BadRequest, match="no InternalIP"):
        podlog.kubelet_url(POD, {"metadata": {"name": "n1"}, "status": {}}, "app", {})
