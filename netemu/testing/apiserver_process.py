"""A ``netemu apiserver`` child process for benchmarks: started on a free loopback port,
stopped by its PID (SIGTERM, then SIGKILL), so no server outlives the benchmark."""

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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def apiserver_process(state_dir: Path, store_url: str = "", tree: Path | None = None,
                      timeout: float = 30.0) -> Iterator[tuple[Path, int]]:
    """Yields (kubeconfig, pid). ``tree``: import netemu from that source tree instead of ours
    (to compare two versions in one run)."""
    log = open(state_dir / "apiserver.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(tree.resolve())) if tree else None
    argv = [sys.executable, "-m", "netemu", "apiserver", "--listen", f"127.0.0.1:{free_port()}",
            "--store", store_url or f"sqlite:{state_dir / 'state.db'}", "--state-dir", str(state_dir),
            "--no-controllers"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=str(tree) if tree else None)
    try:
        deadline = time.monotonic() + timeout
        while "kubeconfig:" not in (state_dir / "apiserver.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((state_dir / "apiserver.log").read_text()[-2000:])
            time.sleep(0.05)
        yield state_dir / "kubeconfig", proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
