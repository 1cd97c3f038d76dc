"""Which images run how (built-in in-process, host process, unsupported), and agnhost flags."""

from __future__ import annotations

import pytest

from netemu.agent.runtime.images import Builtin, Process, Unsupported, repository, resolve
from netemu.agent.runtime.names import host_veth, pod_hostname, pod_netns

AGN = "registry.k8s.io/e2e-test-images/agnhost:2.47"


@pytest.mark.parametrize("image,repo", [
    ("nginx", "nginx"), ("nginx:1.25", "nginx"), ("docker.io/library/nginx@sha256:ab", "docker.io/library/nginx"),
    ("localhost:5000/x/y:1", "localhost:5000/x/y"), ("localhost:5000/x", "localhost:5000/x"),
])
def test_repository_strips_tag_and_digest_not_port(image, repo):
    assert repository(image) == repo


def test_agnhost_netexec_defaults_and_flag_forms():
    assert resolve({"image": AGN, "args": ["netexec"]}) == Builtin(
        "netexec", {"http-port": 8080, "udp-port": 8081, "sctp-port": -1, "delay-shutdown": 0})
    assert resolve({"image": AGN, "args": ["netexec", "--delay-shutdown=100"]}).options["delay-shutdown"] == 100
    bad = resolve({"image": AGN, "args": ["netexec", "--delay-shutdown", "soon"]})
    assert bad.reason == "InvalidArgs" and "--delay-shutdown" in bad.message
    got = resolve({"image": "k8s.gcr.io/e2e-test-images/agnhost:2.39", "command": ["/agnhost"],
                   "args": ["netexec", "--http-port", "80", "--udp-port=-1"]})
    assert got.app == "netexec" and got.options["http-port"] == 80 and got.options["udp-port"] == -1


def test_serve_hostname_flags_follow_upstream():
    got = resolve({"image": AGN, "args": ["serve-hostname", "--udp", "--http=false", "--port", "9377"]})
    assert got.options == {"tcp": False, "udp": True, "http": False, "close": False, "port": 9377}
    clash = resolve({"image": AGN, "args": ["serve-hostname", "--udp"]})  # http defaults to true
    assert isinstance(clash, Unsupported) and "HTTP mode at the same time" in clash.message


def test_bad_agnhost_args_are_reported_not_run():
    assert resolve({"image": AGN, "args": ["netexec", "--http-port=abc"]}).reason == "InvalidArgs"
    assert resolve({"image": AGN, "args": ["netexec", "--bogus=1"]}).reason == "InvalidArgs"
    other = resolve({"image": AGN, "args": ["porter"]})
    assert other.reason == "ImageNotSupported" and "netexec" in other.message


def test_nginx_pause_process_and_unsupported():
    assert resolve({"image": "nginx:latest"}) == Builtin("nginx", {"port": 80})
    assert resolve({"image": "registry.k8s.io/pause:3.9"}) == Builtin("pause", {})
    assert resolve({"image": "busybox", "command": ["sleep"], "args": ["10"]}) == Process(["sleep", "10"])
    assert resolve({"image": AGN, "command": ["sh", "-c", "x"]}) == Process(["sh", "-c", "x"])
    bad = resolve({"image": "redis:7"})
    assert isinstance(bad, Unsupported) and bad.reason == "ImageNotSupported"
    assert "redis:7" in bad.message and "agnhost" in bad.message and "nginx" in bad.message


def test_names_are_deterministic_and_short():
    uid = "3f2a9c1e-7b44-4d0e-9a55-0123456789ab"
    assert pod_netns(uid) == "nep-3f2a9c1e7b4" and len(pod_netns(uid)) == 15
    assert host_veth(uid) == "veth3f2a9c1e"
    with pytest.raises(ValueError):
        pod_netns("../../etc")
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {}}) == "web-1"
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {"hostname": "h"}}) == "h"


@pytest.mark.parametrize("container,argv", [
    ({"image": "busybox", "args": ["sleep", "3600"]}, ["sleep", "3600"]),            # kubectl run bb -- sleep 3600
    ({"image": "busybox:1.36"}, ["sh"]),                                               # the image's CMD
    ({"image": "docker.io/library/alpine:3.20", "command": ["sh", "-c", "echo hi"]}, ["sh", "-c", "echo hi"]),
    ({"image": "debian:12"}, ["bash"]),
    ({"image": "ubuntu"}, ["bash"]),
    ({"image": "curlimages/curl:8.10.1", "args": ["-s", "http://web"]}, ["curl", "-s", "http://web"]),  # ENTRYPOINT curl
    ({"image": "python:3.12", "command": ["python3", "-c", "print(1)"]}, ["python3", "-c", "print(1)"]),
    ({"image": "busybox", "command": ["busybox", "wget", "-qO-", "http://web"]}, ["wget", "-qO-", "http://web"]),
    ({"image": "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3", "command": ["sleep", "infinity"]},
     ["sleep", "infinity"]),
])
def test_userland_images_run_the_nodes_userland_as_docker_would(container, argv):
    assert resolve(container) == Process(argv)


def test_images_that_need_their_own_filesystem_keep_the_clear_error():
    how = resolve({"image": "redis"})
    assert isinstance(how, Unsupported) and how.reason == "ImageNotSupported"
    assert "userland images (busybox, alpine" in how.message
