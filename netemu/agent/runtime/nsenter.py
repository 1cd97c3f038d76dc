"""Entering a network namespace from Python: sockets made inside a pod, processes started in it.

Why not a process per pod: a socket belongs to the network namespace it was *created* in, for
its whole life, whatever thread later uses it. So one short-lived setns() on one helper thread
is enough to create a pod's listening sockets, and the agent's asyncio loop then serves them
with no process, no thread and no namespace switch per pod.

setns(CLONE_NEWNET) changes only the calling thread. The helper thread always switches back to
its original namespace (the node's) before it returns; Python 3.11 has no os.setns, so libc's is
called through ctypes.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import signal
import socket

CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 1, 32, 4096, 16384, 1 << 19
NETNS_RUN_DIR = "/run/netns"
NETNS_ETC_DIR = "/etc/netns"      # ip netns exec binds /etc/netns/NAME/* over /etc/*

_libc = ctypes.CDLL(None, use_errno=True)
# resolved now, not on first use: a forked child (preexec_fn) must not run dlsym, whose lock
# another thread of the agent may have held at fork time
_setns = _libc.setns
_unshare = _libc.unshare
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_prctl = _libc.prctl
PR_SET_PDEATHSIG = 1
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
# Two helper threads: sockets (microseconds; the loop may wait for one synchronously) and
# sandbox plumbing (milliseconds; always awaited), so a sandbox being made never stalls the loop.
_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns-sock")
_plumber = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns-plumb")


def netns_path(name: str) -> str:
    """``/run/netns/NAME`` (``ip netns`` names); a path is returned unchanged."""
    if "/" in name:
        return name
    if not name or name in (".", ".."):
        raise ValueError(f"bad network namespace name {name!r}")
    return os.path.join(NETNS_RUN_DIR, name)


def setns(fd: int, nstype: int) -> None:
    if _setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    if _mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def umount_detach(target: str) -> None:
    if _umount2(target.encode(), 2) != 0:  # MNT_DETACH
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def in_helper_thread(fn, *args):
    """Run ``fn`` on the namespace-switching plumbing thread; a concurrent Future to await."""
    return _plumber.submit(fn, *args)


def _socket_in(path: str, family: int, type_: int) -> socket.socket:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            sock = socket.socket(family, type_)
        finally:
            setns(own, CLONE_NEWNET)  # if this fails the thread is unusable: let it raise
        return sock
    finally:
        os.close(own)


def socket_in_netns(netns: str | None, family: int = socket.AF_INET,
                    type_: int = socket.SOCK_STREAM) -> socket.socket:
    """A new non-blocking socket living in ``netns`` (None or "": this thread's own namespace)."""
    if not netns:
        sock = socket.socket(family, type_)
    else:
        sock = _executor.submit(_socket_in, netns_path(netns), family, type_).result()
    sock.setblocking(False)
    return sock


def preexec_enter(netns: str | None, hostname: str | None, etc_dir: str | None = None,
                  read_only: list[tuple[str, str]] | tuple = ()):
    """A ``preexec_fn`` for subprocess: join ``netns`` and, with ``hostname``, a private UTS
    namespace carrying the pod's hostname (so ``hostname`` in a pod prints the pod's name).
    With ``etc_dir`` (the pod's resolv.conf and hosts, etcfiles.py), a private mount namespace
    in which each file of it is bind-mounted over its /etc namesake: what ``ip netns exec``
    does with /etc/netns/NAME, so a pod's processes resolve names the pod's way.
    ``read_only`` (host path, path the pod sees) are bound read-only in that namespace too (the
    pod's ServiceAccount directory); each target must exist on the host.
    Runs in the forked child only: nothing here touches the agent's own namespaces.

    The process dies with the runtime that starts it (PR_SET_PDEATHSIG): a node's containers
    die with their runtime, and none is left running unseen by the runtime that follows."""
    path = netns_path(netns) if netns else None
    binds = etc_binds(etc_dir) if etc_dir else []
    read_only = [(str(src), str(dst)) for src, dst in read_only]
    parent = os.getpid()

    def enter() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:       # the runtime died between the fork and the prctl
            os._exit(137)
        os.setsid()
        if path:
            fd = os.open(path, os.O_RDONLY)
            setns(fd, CLONE_NEWNET)
            os.close(fd)
        if hostname:
            unshare(CLONE_NEWUTS)
            socket.sethostname(hostname)
        if binds or read_only:
            unshare(CLONE_NEWNS)
            mount("none", "/", None, MS_REC | MS_SLAVE)    # our binds stay in this namespace
            for source, target in binds:
                mount(source, target, None, MS_BIND)
            for source, target in read_only:
                mount(source, target, None, MS_BIND)
                mount(source, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)

    return enter


def etc_binds(etc_dir: str) -> list[tuple[str, str]]:
    """(file in ``etc_dir``, /etc path) pairs to bind, for /etc files that exist (ip netns
    exec's rule); computed before the fork, so the child only mounts."""
    try:
        names = sorted(os.listdir(etc_dir))
    except OSError:
        return []
    return [(os.path.join(etc_dir, n), os.path.join("/etc", n)) for n in names
            if os.path.isfile(os.path.join(etc_dir, n)) and os.path.exists(os.path.join("/etc", n))]
