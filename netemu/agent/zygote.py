"""The launcher template (a zygote): one per cluster, it pays for the node components' imports
once and forks every node from them.

Why: 100 nodes were 100 interpreters importing the same ~25 MB of modules (aiohttp, ssl,
asyncio, prometheus_client, netemu's client, kubelet, runtime and proxy) one after another,
most of the bring-up time and of the memory. Here the template imports all of it, runs a full
collection and ``gc.freeze()`` (the collector then never writes to the imported objects, so
the pages stay shared), and then, per node asked for on stdin, forks a child that enters the
node's network namespace and becomes that node's supervisor (nodesup.py), which forks the
node's components from the same pages. Copy-on-write keeps what they do not write shared.

Every forked process is its own process: its own title in ``ps`` (proctitle.py), killable
alone, its own namespace. None of them needs the template once forked: each node supervisor
starts a new session and the template exits when the cluster supervisor closes its stdin (or
dies), or when it is killed, and nothing running changes.

Protocol (JSON lines): the template writes ``{"ready": true, "pid": N, "import_seconds": s}``
once imported; then each request ``{"node", "netns", "argv", "logs", "control", "runtime",
"state_dir"}`` (argv: the node's ``netemu agent`` flags; runtime: the socket of the node's
runtime process, none: the kubelet runs the runtime inside) is answered ``{"node", "pid"}`` or ``{"node",
"error"}`` (a flag the agent refuses, a namespace that is not there).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import select
import sys
import time
import types

from netemu import procmem
from netemu.agent import forking, proctitle


WARM_CALLS = 32       # > 3.11's warm-up (8 calls) + the adaptive counter's first back-off


def preimport(proxy_modes: str | None) -> None:
    """Everything a node's components import, so that a forked child imports nothing."""
    from netemu.agent.castore import without_system_ca_store
    with without_system_ca_store():
        import aiohttp  # noqa: F401
    import encodings.idna  # noqa: F401 - yarl encodes the API server's host with it on first use
    import http.server  # noqa: F401
    import yaml  # noqa: F401

    import netemu.agent.components  # noqa: F401 - agent, kubelet, runtime, client
    import netemu.agent.kubelet.remote_runtime  # noqa: F401
    import netemu.agent.runtime.server  # noqa: F401
    try:       # the built-in CoreDNS: 2 nodes of 100 run it, but importing it once costs little
        import netemu.agent.runtime.coredns.app  # noqa: F401
    except ImportError:      # no dnslib: those nodes' runtimes report it when a DNS pod comes
        pass
    import netemu.agent.kubelet.logserver  # noqa: F401
    import netemu.agent.nodesup  # noqa: F401
    import netemu.agent.proxy.commands  # noqa: F401
    import netemu.agent.proxy.healthz  # noqa: F401
    import netemu.agent.proxy.metrics  # noqa: F401
    import netemu.agent.proxy.model  # noqa: F401
    import netemu.agent.runtime  # noqa: F401
    try:       # the ingress controller's pods: as CoreDNS, on few nodes
        import netemu.agent.runtime.ingress.app  # noqa: F401
    except ImportError:
        pass
    import netemu.agent.flags  # noqa: F401 - spawn parses each node's flags
    from netemu.agent.proxy import modes
    wanted = [m for m in (proxy_modes or "").split(",") if m and m != modes.NO_PROXY]
    for mode in wanted:
        modes.choose(mode).hook("proxier")
    if wanted:     # every kube-proxy removes the other modes' leftovers at its start (leftovers.py)
        for mode in modes.with_hook("cleanup"):
            mode.hook("cleanup")
    if "nftables" in wanted:
        try:
            import nftables  # type: ignore[import-not-found] # noqa: F401 - libnftables (nftables/apply.py)
        except ImportError:
            pass


def warm_versions() -> None:
    """Give every module's globals and every class the version tags CPython 3.11 assigns on
    first use, here once instead of in each child.

    The specializing interpreter stamps a version into a module dict's keys the first time a
    LOAD_GLOBAL or module attribute load of that module is specialized, and into a class the
    first time it goes through the method cache: a write into a shared page in every process
    that runs the code (measured at 10 nodes: 1.5 MB per node, 0.4-0.5 MB per component). A
    throwaway function per module, run until specialized, stamps its globals and builtins;
    a missing-attribute lookup stamps each class (and its bases)."""
    probe = compile("lambda: (__name__, len)", "<warm>", "eval").co_consts[0]
    for module in list(sys.modules.values()):
        globals_ = getattr(module, "__dict__", None)
        if isinstance(globals_, dict) and "__name__" in globals_:
            fn = types.FunctionType(probe.replace(), globals_)   # a code object of its own each
            for _ in range(WARM_CALLS):
                fn()
    for obj in gc.get_objects():
        if isinstance(obj, type):
            try:
                getattr(obj, "__netemu_version_probe__", None)
            except Exception:       # a metaclass's __getattr__ may refuse: nothing to stamp then
                pass


def spawn(request: dict) -> int:
    """Fork the node supervisor of ``request`` into its namespace; its pid."""
    from netemu.agent import components, flags
    from netemu.agent.nodesup import NodeSupervisor
    from netemu.agent.runtime.nsenter import CLONE_NEWNET, setns

    node = str(request["node"])
    config = flags.parse([str(a) for a in request["argv"]])
    if request.get("runtime"):       # the runtime runs as a process of its own, on this socket
        config = dataclasses.replace(config, runtime_endpoint=str(request["runtime"]))
    netns_fd = os.open(str(request["netns"]), os.O_RDONLY | os.O_CLOEXEC)
    log_path = os.path.join(str(request["logs"]), f"nodesup-{node}.log")

    def child() -> int:
        os.setsid()                 # a session of its own: the template's end is not its end
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.close(devnull)
        forking.to_log(log_path)
        setns(netns_fd, CLONE_NEWNET)
        os.close(netns_fd)
        proctitle.set_title(["netemu", "node-supervisor", "--node", node, "--state-dir",
                             str(request["state_dir"])], comm="nodesup")
        return NodeSupervisor(node, config, components.for_node(config), str(request["logs"]),
                              str(request["control"]), str(request["state_dir"])).run()

    try:
        return forking.fork(child)
    finally:
        os.close(netns_fd)


def reap() -> None:
    """Collect exited node supervisors (children of the template until it exits)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(stdin, stdout) -> None:
    """Answer spawn requests until stdin closes."""
    buf = b""
    fd = stdin.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        reap()
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            request: dict = {}
            try:
                request = json.loads(line)
                answer = {"node": request.get("node"), "pid": spawn(request)}
            except SystemExit as exc:      # argparse refused a flag (its message went to stderr)
                answer = {"node": request.get("node"), "error": f"bad agent flags (exit {exc.code})"}
            except Exception as exc:
                answer = {"node": request.get("node"), "error": f"{type(exc).__name__}: {exc}"}
            stdout.write(json.dumps(answer) + "\n")
            stdout.flush()


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m netemu.agent.zygote", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True, help="the cluster's state dir (names the template in ps)")
    p.add_argument("--proxy-mode", default=None,
                   help="the kube-proxy modes whose packages to pre-import (comma-separated: a mixed cluster)")
    p.add_argument(proctitle.ROOM_FLAG, default="", help="spare room for the children's titles")
    args = p.parse_args(argv)
    start = time.monotonic()
    # The gc module's recipe for fork without exec: no collection in the template (it would
    # leave freed holes in the pages the children share, and their allocations would fill and
    # so copy them), freeze before forking (the children's collections never touch what the
    # template made), collections back on in each child (nodesup.py, components). Before the
    # freeze, the lazily written parts of shared objects are written here once (warm_versions)
    # and the allocators' holes taken (procmem.plug_*): writes a child would otherwise make
    # into pages every node shares.
    gc.disable()
    preimport(args.proxy_mode)
    warm_versions()
    plugged = procmem.plug_heap_holes() + procmem.plug_pymalloc_holes()   # procmem.py: why
    gc.freeze()
    proctitle.set_title(["netemu", "zygote", "--state-dir", args.state_dir], comm="netemu-zygote")
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid(),
                          "import_seconds": round(time.monotonic() - start, 3), "plugged": plugged}) + "\n")
    out.flush()
    serve(sys.stdin, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
