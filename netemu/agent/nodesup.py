"""The node supervisor: systemd's part on one node (Restart=always, with back-off, logging why).

Forked from the launcher template (zygote.py) into the node's network namespace, it forks
each component of the node (components.py: kubelet, kube-proxy) as a child of its own, so
they share the template's imported pages, and restarts whichever dies: at once after a long
run, else after a back-off that doubles (0.5 s, 1 s, 2 s ... 30 s) while the component keeps
dying within RESET_AFTER seconds of its start, as systemd's RestartSec with
RestartSteps/RestartMaxDelaySec would. Every exit and every restart is one line of its log
(``logs/nodesup-NODE.log``) saying what happened ("killed by signal 9 (SIGKILL) after 3.1 s;
restart 2 in 1.0 s").

It is a plain single-threaded loop on ``selectors`` (no asyncio, no threads: it forks, and a
fork must not copy a lock another thread holds), and it listens on a Unix socket for the
experiments' commands (``netemu node kill|restart|stop|start|components``): ``kill`` is SIGKILL
(a crash: restarted with back-off), ``restart`` is ``systemctl restart`` (SIGTERM, then a new
process at once, SIGKILL if the old one takes more than STOP_GRACE seconds), ``stop`` and
``start`` are systemctl's (a stopped component stays down until started), ``status`` lists pids
and restart counts. SIGTERM stops the node: kube-proxy and the kubelet first, SIGKILL after
STOP_GRACE seconds.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from netemu.agent import forking, proctitle
from netemu.agent.agent import AgentConfig
from netemu.agent.components import Component

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
RESET_AFTER = 10.0       # a component that ran this long before dying restarts at once again
STOP_GRACE = 10.0


def next_delay(previous: float, ran_for: float, first: float = BACKOFF_FIRST, most: float = BACKOFF_MAX) -> float:
    """Back-off before the next start of a component that died after ``ran_for`` seconds,
    ``previous`` the last back-off (0: none yet). Pure. A component that ran RESET_AFTER
    seconds or more restarts at once; one that dies sooner waits BACKOFF_FIRST, then twice as
    long each time it dies young again, up to BACKOFF_MAX."""
    if ran_for >= RESET_AFTER:
        return 0.0
    return first if previous <= 0 else min(previous * 2, most)


def describe_exit(status: int) -> str:
    """A wait status in words: "exited with code 1", "killed by signal 9 (SIGKILL)". Pure."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "?"
        return f"killed by signal {sig} ({name})"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


@dataclass
class Unit:
    component: Component
    pid: int | None = None
    started: float = 0.0                 # monotonic
    started_at: float = 0.0              # epoch, for `netemu node components`
    restarts: int = 0                    # automatic restarts (systemd's NRestarts)
    delay: float = 0.0                   # the back-off last used
    due: float | None = None             # monotonic time of the next start
    restart_now: bool = False            # `restart` asked: start again as soon as it exits
    held: bool = False                   # `stop` asked: not restarted until `start`
    kill_at: float | None = None         # SIGKILL if still running then (a stop or restart)
    last_exit: str = ""
    waiters: list = field(default_factory=list)   # control connections waiting for its start

    @property
    def name(self) -> str:
        return self.component.name


class NodeSupervisor:
    def __init__(self, node: str, config: AgentConfig, components: tuple[Component, ...],
                 logs_dir: str, control_path: str, state_dir: str,
                 backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_MAX)):
        self.node, self.config, self.logs_dir = node, config, logs_dir
        self.backoff = backoff
        self.control_path, self.state_dir = control_path, state_dir
        self.units = {c.name: Unit(c) for c in components}
        self.stopping = False
        self.sel = selectors.DefaultSelector()
        self._wake_r = self._wake_w = -1
        self.server: socket.socket | None = None

    # ---- the loop ----

    def run(self) -> int:
        gc.enable()          # the template froze its objects with collections off (zygote.py)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "signal")
        self._listen()
        self.say(f"node supervisor for {self.node} (pid {os.getpid()}): starting "
                 f"{', '.join(self.units)}")
        for unit in self.units.values():
            self.start(unit)
        while True:
            self.reap()
            now = time.monotonic()
            if self.stopping and not any(u.pid for u in self.units.values()):
                break
            for unit in self.units.values():
                if unit.pid is None and unit.due is not None and now >= unit.due and not self.stopping:
                    self.start(unit)
                if unit.pid is not None and unit.kill_at is not None and now >= unit.kill_at:
                    self.say(f"{unit.name} (pid {unit.pid}) did not stop in {STOP_GRACE:.0f}s: SIGKILL")
                    self._signal(unit.pid, signal.SIGKILL)
                    unit.kill_at = None
            for key, _ in self.sel.select(self._timeout()):
                if key.data == "signal":
                    self._drain_wakeups()
                elif key.data == "listen":
                    self._accept()
                else:
                    self._serve(key.fileobj)
        self.say("node supervisor stopped")
        self._close()
        return 0

    def _timeout(self) -> float:
        now = time.monotonic()
        times = [t for u in self.units.values() for t in (u.due if u.pid is None else None, u.kill_at) if t]
        return max(0.0, min(times) - now) if times else 1.0

    def _on_signal(self, signum, _frame) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) and not self.stopping:
            self.stopping = True
            for name in reversed(list(self.units)):
                unit = self.units[name]
                unit.due = None
                if unit.pid is not None:
                    self._signal(unit.pid, signal.SIGTERM)
                    unit.kill_at = time.monotonic() + STOP_GRACE

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # ---- components ----

    def start(self, unit: Unit) -> None:
        unit.due = None
        unit.kill_at = None
        try:
            pid = forking.fork(lambda: self._child(unit.component))
        except OSError as exc:      # no memory or pids left: try again after a back-off
            unit.delay = next_delay(unit.delay, 0.0, *self.backoff)
            unit.due = time.monotonic() + unit.delay
            self.say(f"{unit.name}: fork failed ({exc}); retrying in {unit.delay:.1f}s")
            return
        unit.pid, unit.started, unit.started_at = pid, time.monotonic(), time.time()
        self.say(f"{unit.name} started (pid {pid})" + (f", restart {unit.restarts}" if unit.restarts else ""))
        for conn in unit.waiters:
            self._reply(conn, {"ok": True, "component": unit.name, "pid": pid})
        unit.waiters.clear()
        self.write_state()

    def _child(self, component: Component) -> int:
        """In the forked child: default signals, none of the supervisor's descriptors, output
        to the component's log, its own title in ps; then the component's program."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        for key in list(self.sel.get_map().values()):     # the wakeup pipe, the socket, clients
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        self.sel.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        for unit in self.units.values():
            for conn in unit.waiters:
                conn.close()
        os.setpgid(0, 0)       # its own group: a terminal's signals reach the supervisor only
        forking.to_log(os.path.join(self.logs_dir, f"{component.name}-{self.node}.log"))
        proctitle.set_title(["netemu", component.name, "--node", self.node, "--state-dir", self.state_dir],
                            comm=component.name)
        logging.basicConfig(level=logging.INFO, force=True, stream=sys.stderr,
                            format=f"%(asctime)s %(levelname)s {component.name}: %(name)s: %(message)s")
        print(f"netemu {component.name} for node {self.node} (pid {os.getpid()})", flush=True)
        return component.run(self.config)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            unit = next((u for u in self.units.values() if u.pid == pid), None)
            if unit is not None:
                self._exited(unit, status)

    def _exited(self, unit: Unit, status: int) -> None:
        ran = time.monotonic() - unit.started
        unit.pid, unit.kill_at = None, None
        unit.last_exit = f"{describe_exit(status)} after {ran:.1f}s"
        if self.stopping or unit.held:
            self.say(f"{unit.name} stopped: {unit.last_exit}")
        elif unit.restart_now:
            unit.restart_now = False
            unit.delay = 0.0
            self.say(f"{unit.name} {unit.last_exit}; restarting as asked")
            unit.due = time.monotonic()
        else:
            unit.delay = next_delay(unit.delay, ran, *self.backoff)
            unit.restarts += 1
            self.say(f"{unit.name} {unit.last_exit}; restart {unit.restarts} in {unit.delay:.1f}s"
                     + (" (back-off)" if unit.delay else ""))
            unit.due = time.monotonic() + unit.delay
        self.write_state()

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    # ---- state and log ----

    def status(self) -> dict[str, Any]:
        return {"node": self.node, "supervisor_pid": os.getpid(), "components": {
            u.name: {"pid": u.pid, "restarts": u.restarts, "started_at": u.started_at,
                     "state": "running" if u.pid else ("stopped" if self.stopping or u.held else "waiting"),
                     "next_start_in": round(max(0.0, u.due - time.monotonic()), 3) if u.due and not u.pid else None,
                     "last_exit": u.last_exit} for u in self.units.values()}}

    def write_state(self) -> None:
        """``nodes/NODE/components.json``: what `netemu status`, cleanup and benchmarks read."""
        path = os.path.join(self.config.state_dir, "components.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(self.config.state_dir, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(self.status(), f)
            os.replace(tmp, path)
        except OSError as exc:
            self.say(f"cannot write {path}: {exc}")

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    # ---- control socket ----

    def _listen(self) -> None:
        path = self.control_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(16)
        server.setblocking(False)
        self.server = server
        self.sel.register(server, selectors.EVENT_READ, "listen")

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, {"buf": b""})

    def _serve(self, conn: socket.socket) -> None:
        key = self.sel.get_key(conn)
        try:
            data = conn.recv(4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return
            data = b""
        key.data["buf"] += data
        if not data or b"\n" in key.data["buf"] or len(key.data["buf"]) > 65536:
            self.sel.unregister(conn)
            try:
                request = json.loads(key.data["buf"].split(b"\n", 1)[0] or b"{}")
                self.handle(request, conn)
            except ValueError as exc:
                self._reply(conn, {"error": f"bad request: {exc}"})

    def handle(self, request: dict, conn: socket.socket) -> None:
        op, name = request.get("op"), request.get("component")
        if op == "status":
            return self._reply(conn, self.status())
        unit = self.units.get(str(name))
        if op not in ("kill", "restart", "stop", "start"):
            return self._reply(conn, {"error": f"unknown operation {op!r} (kill, restart, stop, start, status)"})
        if unit is None:
            return self._reply(conn, {"error": f"no component {name!r} on {self.node} "
                                               f"(components: {', '.join(self.units)})"})
        if self.stopping:
            return self._reply(conn, {"error": "the node is stopping"})
        old = unit.pid
        if op == "stop":
            unit.held, unit.due = True, None
            self.say(f"{unit.name} (pid {old}): stop as asked; not restarted until started")
            if old is not None:
                self._signal(old, signal.SIGTERM)
                unit.kill_at = time.monotonic() + STOP_GRACE
            return self._reply(conn, {"ok": True, "component": unit.name, "stopped": old})
        if op == "start":
            unit.held = False
            if old is not None or (unit.due is not None):
                return self._reply(conn, {"ok": True, "component": unit.name, "pid": old})
            self.say(f"{unit.name}: start as asked")
            unit.waiters.append(conn)
            unit.delay = 0.0
            return self.start(unit)
        unit.held = bool(request.get("hold")) and op == "kill"     # kill and keep it down until start
        if op == "kill":
            if old is None:
                return self._reply(conn, {"error": f"{unit.name} is not running (it starts in "
                                                   f"{max(0.0, (unit.due or 0) - time.monotonic()):.1f}s)"})
            self.say(f"{unit.name} (pid {old}): SIGKILL as asked" + ("; held down until started" if unit.held else ""))
            self._signal(old, signal.SIGKILL)
            return self._reply(conn, {"ok": True, "component": unit.name, "killed": old})
        self.say(f"{unit.name} (pid {old}): restart as asked")
        unit.waiters.append(conn)
        if old is None:
            unit.delay = 0.0
            self.start(unit)
        else:
            unit.restart_now = True
            self._signal(old, signal.SIGTERM)
            unit.kill_at = time.monotonic() + STOP_GRACE

    def _reply(self, conn: socket.socket, answer: dict) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall((json.dumps(answer) + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                os.unlink(self.control_path)
            except FileNotFoundError:
                pass
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


def control_request(path: str, request: dict, timeout: float = 30.0) -> dict:
    """Send one request to a node supervisor (the client side, for ``netemu node ...``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall((json.dumps(request) + "\n").encode())
        return json.loads(conn.makefile("r").readline() or "{}")
