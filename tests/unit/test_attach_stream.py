"""pods/attach without a cluster: the options (api/execstream.py), the API server's refusals, and
the runtime's side with real processes on this host (no namespaces): a terminal container
(stdio.ContainerIO holding the pty master) and a piped one, attached over a socket pair with
the frames the kubelet passes on (runtime/attach.py), stdinOnce as containerd's attach, resizes,
and a container without stdin followed through its log."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from netemu.agent.runtime.attach import attach
from netemu.agent.runtime.process import ProcessContainer
from netemu.api import errors
from netemu.api import execstream as xs
from netemu.apiserver.podexec import check_running

ENV = {"PATH": "/usr/bin:/bin", "PS1": "$ "}


def test_attach_options_as_kubectl_sends_them():
    opts = xs.parse_attach_options({"container": ["bb"], "stdin": ["true"], "stdout": ["true"],
                                    "stderr": ["true"], "tty": ["true"]})
    assert opts == xs.ExecOptions((), "bb", True, True, False, True)       # a terminal: one output
    assert xs.parse_attach_options({}) == xs.ExecOptions((), None, False, True, True, False)
    with pytest.raises(xs.ExecError, match="at least one of stdin, stdout, stderr"):
        xs.parse_attach_options({"stdout": ["false"], "stderr": ["false"]})
    assert xs.terminal_size(b'{"Width": 100, "Height": 30}') == (30, 100)
    for bad in (b"nope", b'{"Width": -1}', b"[1]"):
        with pytest.raises(xs.ExecError):
            xs.terminal_size(bad)


def test_the_api_server_refuses_an_attach_in_the_kubelets_words():
    pod = {"metadata": {"name": "bb", "namespace": "team"}, "spec": {"nodeName": "n1"},
           "status": {"phase": "Pending", "containerStatuses": [{"name": "bb", "state": {"waiting": {}}}]}}
    with pytest.raises(errors.BadRequest, match="unable to upgrade connection: container bb not found in pod bb_team"):
        check_running(pod, "bb", "attach")
    with pytest.raises(errors.BadRequest, match="cannot attach a container in a completed pod; current phase is Failed"):
        check_running({**pod, "status": {"phase": "Failed"}}, "bb", "attach")


class Client:
    """The kubelet's side of one attach: frames to the runtime's session, output collected."""

    def __init__(self, container: ProcessContainer, opts: xs.ExecOptions):
        self.container, self.opts = container, opts
        self.out = b""
        self.status: dict | None = None

    async def __aenter__(self) -> "Client":
        a, b = socket.socketpair()
        rr, rw = await asyncio.open_connection(sock=a)
        self.reader, self.writer = await asyncio.open_connection(sock=b)
        self.session = asyncio.ensure_future(attach(self.container, self.opts, rr, rw))
        self.session.add_done_callback(lambda _: rw.close())
        return self

    async def __aexit__(self, *exc) -> None:
        self.writer.close()
        await asyncio.wait_for(self.session, 10)

    def send(self, channel: int, data: bytes) -> None:
        self.writer.write(xs.frame(channel, data))

    async def until(self, text: bytes, timeout: float = 10) -> bytes:
        """Output until ``text`` has come (or the session's Status, then the test fails)."""
        while text not in self.out:
            got = await asyncio.wait_for(xs.read_frame(self.reader), timeout)
            assert got is not None and self.status is None, (text, self.out)
            if got[0] == xs.ERROR:
                self.status = json.loads(got[1])
                assert text in self.out, (text, self.out)
            else:
                self.out += got[1]
        return self.out

    async def end(self) -> dict:
        """The session's final Status (the error channel), reading output up to it."""
        while self.status is None:
            got = await asyncio.wait_for(xs.read_frame(self.reader), 10)
            assert got is not None, self.out
            if got[0] == xs.ERROR:
                self.status = json.loads(got[1])
            else:
                self.out += got[1]
        return self.status


async def started(tmp_path, argv: list[str], stdin: bool, tty: bool, stdin_once: bool) -> ProcessContainer:
    c = ProcessContainer(argv, None, None, str(tmp_path / "0.log"), dict(ENV), stdio=(stdin, tty, stdin_once))
    await c.start()
    return c


def test_a_terminal_container_takes_input_resizes_and_ends_the_session_when_it_exits(tmp_path):
    async def main():
        c = await started(tmp_path, ["sh", "-i"], True, True, True)
        async with Client(c, xs.ExecOptions((), stdin=True, stderr=False, tty=True)) as k:
            k.send(xs.RESIZE, json.dumps({"Width": 101, "Height": 31}).encode())
            k.send(xs.STDIN, b"tty; stty size; echo hello-$((6*7))\n")
            out = await k.until(b"hello-42\r\n")
            assert b"/dev/pts/" in out and b"31 101" in out
            k.send(xs.STDIN, b"exit\n")
            assert (await k.end())["status"] == "Success"
        assert await c.wait() == 0
        assert b"hello-42" in (tmp_path / "0.log").read_bytes()      # kubectl logs sees it too
    asyncio.run(main())


def test_stdin_once_a_piped_container_gets_eof_when_the_first_client_ends_its_stdin(tmp_path):
    async def main():
        c = await started(tmp_path, ["sh", "-c", "cat; echo done-$((1+1)) >&2"], True, False, True)
        async with Client(c, xs.ExecOptions((), stdin=True)) as k:
            k.send(xs.STDIN, b"abc\n")
            await k.until(b"abc\n")
            k.send(xs.CLOSE, bytes([xs.STDIN]))
            assert (await k.end())["status"] == "Success"
            assert b"done-2\n" in k.out                                  # stderr, after cat's EOF
        assert await c.wait() == 0
    asyncio.run(main())


def test_without_stdin_once_a_client_ending_its_stdin_detaches_and_the_next_one_gets_in(tmp_path):
    async def main():
        c = await started(tmp_path, ["cat"], True, False, False)
        async with Client(c, xs.ExecOptions((), stdin=True)) as k:
            k.send(xs.STDIN, b"one\n")
            await k.until(b"one\n")
            k.send(xs.CLOSE, bytes([xs.STDIN]))
            assert (await k.end())["status"] == "Success"
        assert c.proc.returncode is None                                  # still running
        async with Client(c, xs.ExecOptions((), stdin=True)) as k:
            k.send(xs.STDIN, b"two\n")
            await k.until(b"two\n")
        c.kill()
        await c.wait()
        assert (tmp_path / "0.log").read_bytes() == b"one\ntwo\n"
    asyncio.run(main())


def test_two_clients_see_the_same_output_and_a_leaving_client_ends_nothing(tmp_path):
    async def main():
        c = await started(tmp_path, ["cat"], True, False, False)
        async with Client(c, xs.ExecOptions((), stdin=True)) as writer_client:
            async with Client(c, xs.ExecOptions((), stdout=True)) as watcher:
                await asyncio.sleep(0.1)
                writer_client.send(xs.STDIN, b"both\n")
                await watcher.until(b"both\n")
                await writer_client.until(b"both\n")
        assert c.proc.returncode is None
        c.kill()
        assert await c.wait() == 137
    asyncio.run(main())


def test_a_container_without_stdin_is_followed_through_its_log(tmp_path):
    async def main():
        c = await started(tmp_path, ["sh", "-c", "echo before; sleep 0.5; echo after; sleep 0.5"], False, False, False)
        await asyncio.sleep(0.25)
        async with Client(c, xs.ExecOptions((), stdin=True)) as k:
            k.send(xs.STDIN, b"dropped\n")                               # no stdin: nothing to take it
            assert (await k.end())["status"] == "Success"
        assert k.out == b"after\n"                                        # from the moment it attached
    asyncio.run(main())


def test_the_kubelet_reaches_a_container_through_the_runtimes_socket(tmp_path):
    """CRI Attach on its own connection to the runtime process's socket (runtime/server.py),
    joined by the kubelet (RemoteRuntime.attach) to the API server's stream byte for byte; a
    container the runtime does not run is refused before the kubelet's 101."""
    from netemu.agent import cri
    from netemu.agent.kubelet.remote_runtime import RemoteHandle, RemoteRuntime
    from netemu.agent.runtime.server import Running, RuntimeService

    async def main():
        c = await started(tmp_path, ["cat"], True, False, False)
        service = RuntimeService(str(tmp_path), "", "n1")
        service.containers["c1"] = Running(cri.ContainerInfo("c1", "uid", "c", 0, "running", 0.0), c)
        sock = str(tmp_path / "cri.sock")
        server = await asyncio.start_unix_server(service.handle_client, sock)
        runtime = RemoteRuntime(sock)
        a, b = socket.socketpair()
        kr, kw = await asyncio.open_connection(sock=a)          # the kubelet's side of the API stream
        api_reader, api_writer = await asyncio.open_connection(sock=b)
        accepted = []
        with pytest.raises(LookupError, match='container "nope" is not found'):
            await runtime.attach(RemoteHandle(runtime, "nope"), xs.ExecOptions((), stdin=True), kr, kw,
                                 lambda: accepted.append(1))
        assert accepted == []
        joined = asyncio.ensure_future(runtime.attach(RemoteHandle(runtime, "c1"), xs.ExecOptions((), stdin=True),
                                                      kr, kw, lambda: accepted.append(1)))
        api_writer.write(xs.frame(xs.STDIN, b"through\n"))
        assert await asyncio.wait_for(xs.read_frame(api_reader), 10) == (xs.STDOUT, b"through\n")
        api_writer.write(xs.frame(xs.CLOSE, bytes([xs.STDIN])))             # detaches: cat runs on
        channel, status = await asyncio.wait_for(xs.read_frame(api_reader), 10)
        assert channel == xs.ERROR and json.loads(status)["status"] == "Success" and accepted == [1]
        assert c.proc.returncode is None
        api_writer.close()
        await asyncio.wait_for(joined, 10)
        c.kill()
        await c.wait()
        server.close()
    asyncio.run(main())
