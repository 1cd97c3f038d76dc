"""One probe attempt against loopback servers: httpGet status ranges and named ports, tcpSocket
refused, exec exit codes, unsupported handlers; each failure carries a message."""

import asyncio

from netemu.agent.kubelet.probes import ProbeSpec
from netemu.agent.kubelet.probing import run_probe


async def http_server(status: int):
    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:      # a tcpSocket probe: connect, then close
            writer.close()
            return
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def spec(kind, probe):
    return ProbeSpec.from_container({"name": "c", f"{kind}Probe": probe}, kind)


async def no_exec(argv, timeout):
    raise AssertionError("exec not expected")


def test_http_tcp_exec_probes():
    async def main():
        ok_srv, ok_port = await http_server(204)
        bad_srv, bad_port = await http_server(500)
        container = {"name": "c", "ports": [{"name": "http", "containerPort": ok_port}]}
        try:
            assert await run_probe(spec("readiness", {"httpGet": {"port": "http", "path": "/healthz"}}),
                                   container, "127.0.0.1", no_exec) == (True, "")
            ok, why = await run_probe(spec("liveness", {"httpGet": {"port": bad_port}}), container, "127.0.0.1", no_exec)
            assert not ok and "statuscode: 500" in why
            ok, why = await run_probe(spec("liveness", {"tcpSocket": {"port": ok_port}}), container, "127.0.0.1", no_exec)
            assert ok
            bad_srv.close()
            await bad_srv.wait_closed()
            ok, why = await run_probe(spec("liveness", {"tcpSocket": {"port": bad_port}}), container, "127.0.0.1", no_exec)
            assert not ok and "refused" in why
            ok, why = await run_probe(spec("liveness", {"httpGet": {"port": "nope"}}), container, "127.0.0.1", no_exec)
            assert not ok and "nope" in why

            async def exec_(argv, timeout):
                return (0, b"") if argv == ["true"] else (3, b"not ready yet\n")
            assert (await run_probe(spec("startup", {"exec": {"command": ["true"]}}), container, "", exec_))[0]
            assert await run_probe(spec("startup", {"exec": {"command": ["x"]}}), container, "", exec_) == \
                (False, "not ready yet")
            ok, why = await run_probe(spec("readiness", {"grpc": {"port": 1}}), container, "127.0.0.1", no_exec)
            assert not ok and "grpc" in why
        finally:
            ok_srv.close()
    asyncio.run(asyncio.wait_for(main(), 30))
