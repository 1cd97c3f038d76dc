"""The cluster supervisor's side of the launcher template (netemu/agent/zygote.py).

The template is started first thing in ``netemu up`` so that its imports overlap with Mininet
building the network; ``spawn`` then asks it for one node at a time (a fork: milliseconds)
and returns the node supervisor's pid. Closing the pipe ends the template; nothing it forked
depends on it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from netemu.agent.proctitle import room_argv


class LauncherError(RuntimeError):
    """The template died or refused a node; the message says why (and where its log is)."""


def launcher_argv(python: str, state_dir: str, proxy_mode: str | None) -> list[str]:
    argv = [python, "-m", "netemu.agent.zygote", "--state-dir", state_dir]
    if proxy_mode:
        argv += ["--proxy-mode", proxy_mode]
    return argv + room_argv()


class Launcher:
    def __init__(self, state_dir: str, proxy_mode: str | None, log_path: Path, python: str = sys.executable):
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(launcher_argv(python, state_dir, proxy_mode), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                         close_fds=True)
        self.ready: dict | None = None
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _line(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LauncherError(f"the launcher template did not answer in {timeout:.0f}s (log {self.log_path})")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise LauncherError(f"the launcher template exited (code {self.proc.poll()}); "
                                        f"see {self.log_path}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self, timeout: float = 120.0) -> dict:
        """Until the template has imported everything: {"pid", "import_seconds"}."""
        if self.ready is None:
            self.ready = self._line(timeout)
        return self.ready

    def spawn(self, node: str, netns: str, argv: list[str], logs: str, control: str, state_dir: str,
              runtime: str | None = None, timeout: float = 60.0) -> int:
        """Fork ``node``'s supervisor into ``netns`` with the node's agent flags ``argv``;
        ``runtime``: the socket of the node's runtime process (None: inside the kubelet)."""
        request = {"node": node, "netns": netns, "argv": argv, "logs": logs, "control": control,
                   "state_dir": state_dir, "runtime": runtime}
        return self.spawn_all([request], timeout)[node]

    def spawn_all(self, requests: list[dict], timeout: float = 60.0, into: dict | None = None) -> dict[str, int]:
        """Every request sent at once, then every answer read ({node: pid}, also put in ``into``
        as they come, so a caller knows what was forked even when some node failed): the
        template forks node after node while the pipe carries the rest (no round trip each)."""
        self.wait_ready(timeout)
        try:
            self.proc.stdin.write(b"".join((json.dumps(r) + "\n").encode() for r in requests))
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise LauncherError(f"the launcher template is gone (see {self.log_path})") from None
        pids, errors = ({} if into is None else into), []
        for _ in requests:
            answer = self._line(timeout)
            if "pid" in answer:
                pids[answer["node"]] = int(answer["pid"])
            else:
                errors.append(f"node {answer.get('node')}: {answer.get('error', answer)}")
        if errors:
            raise LauncherError(f"{'; '.join(errors)} (see {self.log_path})")
        return pids

    def close(self, timeout: float = 5.0) -> None:
        """End the template (what it forked keeps running)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
