"""A real ``netemu apiserver`` child process for tests and benchmarks, stopped by its PID.

Started on a free 127.0.0.1 port with the caller's state dir; ``kubectl(...)`` runs the real
kubectl with the kubeconfig the server wrote. ``stop()`` sends SIGTERM and returns the exit code
(the server must stop cleanly: 0), falling back to SIGKILL, so no server outlives its test or
benchmark. ``apiserver_process()`` is the same as a context manager, optionally running netemu
from another source tree (to compare two versions in one benchmark run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServerProcess:
    def __init__(self, state_dir: Path, store_url: str | None = None, *,
                 controllers: bool = False, extra_args: list[str] | tuple[str, ...] = (),
                 tree: Path | None = None):
        """``controllers`` runs the scheduler and controllers in the process (off by default: most
        API tests want a quiet server); ``extra_args`` go to ``netemu apiserver`` as they are;
        ``tree``: import netemu from that source tree instead of ours."""
        self.controllers = controllers
        self.extra_args = list(extra_args)
        self.tree = tree
        self.state_dir = Path(state_dir)
        self.port = free_port()
        self.store_url = store_url or f"sqlite:{self.state_dir / 'state.db'}"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.log = self.state_dir / "apiserver.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 30.0) -> "ApiServerProcess":
        argv = [sys.executable, "-m", "netemu", "apiserver", "--listen", f"127.0.0.1:{self.port}",
                "--store", self.store_url, "--state-dir", str(self.state_dir), *self.extra_args]
        if not self.controllers:
            argv.append("--no-controllers")
        env = dict(os.environ, PYTHONPATH=str(self.tree.resolve())) if self.tree else None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=str(self.tree) if self.tree else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netemu apiserver exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if "kubeconfig:" in self.log.read_text():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"netemu apiserver did not start in {timeout}s: {self.log.read_text()[-2000:]}")

    def kubectl(self, *args: str, check: bool = True, kubeconfig: Path | None = None,
                stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig), "HOME": str(self.state_dir)}
        result = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                                input=stdin, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code


@contextlib.contextmanager
def apiserver_process(state_dir: Path, store_url: str = "", tree: Path | None = None,
                      timeout: float = 30.0) -> Iterator[tuple[Path, int]]:
    """Yields (kubeconfig, pid) of a server without controllers; stopped on exit."""
    server = ApiServerProcess(state_dir, store_url or None, tree=tree)
    try:
        server.start(timeout)
        yield server.kubeconfig, server.pid
    finally:
        server.stop()
