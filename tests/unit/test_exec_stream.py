"""pods/exec without a cluster: the options and Status of api/execstream.py, the API server's
refusals (podexec.check_running), and the kubelet's ExecSession running a real command on this
host (no namespaces: the node's own) over a socket pair, with pipes and with a terminal."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from netemu.agent.kubelet.execserver import ExecSession, Place, place
from netemu.api import errors
from netemu.api import execstream as xs
from netemu.apiserver.podexec import check_running


def test_options_as_kubectl_sends_them():
    opts = xs.parse_options({"command": ["sh", "-c", "echo hi"], "container": ["c"], "stdin": ["true"],
                             "stdout": ["true"], "stderr": ["true"], "tty": ["false"]})
    assert opts == xs.ExecOptions(("sh", "-c", "echo hi"), "c", True, True, True, False)
    again = {}
    for k, v in opts.query():
        again.setdefault(k, []).append(v)
    assert xs.parse_options(again) == opts
    assert xs.parse_options({"command": ["sh"], "tty": ["true"]}).stderr is False    # one terminal output
    with pytest.raises(xs.ExecError, match="at least 1 command"):
        xs.parse_options({"stdout": ["true"]})
    with pytest.raises(xs.ExecError, match="at least one of stdin, stdout, stderr"):
        xs.parse_options({"command": ["true"], "stdout": ["false"], "stderr": ["false"]})


def test_exit_status_carries_the_code_kubectl_exits_with():
    assert xs.exit_status(0)["status"] == "Success"
    failed = xs.exit_status(3, ["sh"])
    assert failed["reason"] == "NonZeroExitCode" and failed["details"]["causes"] == [{"reason": "ExitCode",
                                                                                      "message": "3"}]


def test_the_api_server_refuses_what_cannot_take_an_exec():
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"},
           "status": {"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}},
                                                                {"name": "w", "state": {"waiting": {}}}]}}
    check_running(pod, "c")
    with pytest.raises(errors.BadRequest, match=r'container not found \("w"\)'):
        check_running(pod, "w")
    with pytest.raises(errors.BadRequest, match="does not have a host assigned"):
        check_running({**pod, "spec": {}}, "c")
    with pytest.raises(errors.BadRequest, match="completed pod; current phase is Succeeded"):
        check_running({**pod, "status": {"phase": "Succeeded"}}, "c")


def session(opts: xs.ExecOptions, frames: list[bytes]) -> tuple[dict[int, bytes], dict]:
    """Run ``opts`` through an ExecSession; send ``frames`` as the API side; (output by channel, Status)."""
    async def main():
        a, b = socket.socketpair()
        kr, kw = await asyncio.open_connection(sock=a)
        ar, aw = await asyncio.open_connection(sock=b)
        where = Place(None, None, None, env={"PATH": "/usr/bin:/bin"})
        running = asyncio.ensure_future(ExecSession(opts, where, kr, kw).run())
        for f in frames:
            aw.write(f)
        await aw.drain()
        out: dict[int, bytes] = {}
        while True:
            channel, data = await asyncio.wait_for(xs.read_frame(ar), 10)
            if channel == xs.ERROR:
                break
            out[channel] = out.get(channel, b"") + data
        await running
        for w in (aw, kw):
            w.close()
        return out, json.loads(data)
    return asyncio.run(main())


def test_pipes_stdin_stdout_stderr_and_the_exit_code():
    out, status = session(xs.ExecOptions(("sh", "-c", "cat; echo err >&2; exit 4"), stdin=True),
                          [xs.frame(xs.STDIN, b"hello "), xs.frame(xs.STDIN, b"world"),
                           xs.frame(xs.CLOSE, bytes([xs.STDIN]))])
    assert out == {xs.STDOUT: b"hello world", xs.STDERR: b"err\n"}
    assert status["details"]["causes"][0]["message"] == "4"


def test_a_terminal_gets_kubectls_size_before_the_command_starts():
    size = json.dumps({"Width": 123, "Height": 45}).encode()
    out, status = session(xs.ExecOptions(("sh", "-c", "stty size; tty"), tty=True, stderr=False),
                          [xs.frame(xs.RESIZE, size)])
    assert status["status"] == "Success"
    lines = out[xs.STDOUT].decode().split()
    assert lines[:2] == ["45", "123"] and lines[2].startswith("/dev/pts/")


def test_an_unknown_command_is_a_failure_status():
    out, status = session(xs.ExecOptions(("no-such-command-here",)), [])
    assert out == {} and status["status"] == "Failure"
    assert 'exec: "no-such-command-here": executable file not found in $PATH' in status["message"]


def test_the_command_gets_the_containers_env_and_the_kubernetes_services(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "team", "uid": "u1"},
           "spec": {"nodeName": "n1", "hostNetwork": True}, "status": {"podIP": "10.0.0.5"}}
    container = {"name": "c", "workingDir": "/srv",
                 "env": [{"name": "A", "value": "1"}, {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "KUBERNETES_SERVICE_PORT", "value": "own"}]}
    where = place(pod, container, str(tmp_path), str(tmp_path / "volumes"),
                  {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert where.netns is None and where.working_dir == "/srv" and where.binds == []
    assert where.env["A"] == "1" and where.env["ME"] == "p" and where.env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert where.env["KUBERNETES_SERVICE_PORT"] == "own"          # the container's own env wins
