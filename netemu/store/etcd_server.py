"""Run a private single-member etcd (Debian's etcd-server) on loopback, for tests and
``netemu up --store etcd``.

It listens on free 127.0.0.1 ports only, keeps its data in a directory of its own (a temp dir
unless one is given), and is stopped by its PID (SIGTERM, then SIGKILL); a temp data dir is
removed afterwards. Its log goes to ``etcd.log`` beside the data, and a start that fails quotes
the log's tail so the reason is visible.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


class EtcdError(RuntimeError):
    """etcd could not be started (binary missing, ports taken, bad data dir...)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """``with EtcdServer() as etcd: EtcdStore(etcd.endpoints)``."""

    def __init__(self, data_dir: str | None = None, *, binary: str = "etcd",
                 auto_compaction_revisions: int | None = None, name: str | None = None,
                 client_port: int | None = None, peer_port: int | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.auto_compaction_revisions = auto_compaction_revisions
        self.name = name or f"netemu{os.getpid()}"
        self.proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self.client_url = ""
        self.client_port, self.peer_port = client_port, peer_port

    @property
    def endpoints(self) -> list[str]:
        return [self.client_url]

    def argv(self, client_port: int, peer_port: int, data: str) -> list[str]:
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        argv = [self.binary, "--name", self.name, "--data-dir", data,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}", "--initial-cluster-state", "new",
                "--listen-metrics-urls", "", "--logger", "zap", "--log-level", "warn"]
        if self.auto_compaction_revisions:
            argv += ["--auto-compaction-mode", "revision",
                     "--auto-compaction-retention", str(self.auto_compaction_revisions)]
        return argv

    def start(self, timeout: float = 30.0) -> "EtcdServer":
        if shutil.which(self.binary) is None:
            raise EtcdError(f"{self.binary} not found: install Debian's etcd-server")
        if self.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="netemu-etcd-")
            self.data_dir = self._tmp
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)   # a named dir may not exist yet
        data = os.path.join(self.data_dir, "member-data")
        last_error = ""
        for _ in range(3):                      # a free port can be taken before etcd binds it
            client_port = self.client_port or free_port()
            peer_port = self.peer_port or free_port()
            self.client_url = f"http://127.0.0.1:{client_port}"
            log = open(os.path.join(self.data_dir, "etcd.log"), "ab")
            try:
                self.proc = subprocess.Popen(self.argv(client_port, peer_port, data),
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            finally:
                log.close()
            try:
                self._wait_healthy(timeout)
                return self
            except EtcdError as exc:
                last_error = str(exc)
                self._terminate()
        self.stop()
        raise EtcdError(last_error)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EtcdError(f"etcd exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.client_url + "/health", timeout=1) as resp:
                    if json.load(resp).get("health") == "true":
                        return
            except (OSError, ValueError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise EtcdError(f"etcd not healthy after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(os.path.join(self.data_dir or "", "etcd.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop our etcd (by PID) and remove the temp data dir; safe to call twice."""
        self._terminate()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self.data_dir = None

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
