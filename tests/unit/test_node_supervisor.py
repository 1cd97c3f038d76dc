"""The node supervisor (systemd's part on a node) without a kernel: a real NodeSupervisor process
running stand-in components (plain functions), driven through its control socket as
`netemu node kill|restart|components` drives it; the back-off rule, exit descriptions, the
health rule of kube-proxy's /healthz and the process titles as pure functions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netemu.agent import proctitle
from netemu.agent.nodesup import BACKOFF_FIRST, BACKOFF_MAX, RESET_AFTER, control_request, describe_exit, next_delay
from netemu.agent.proxy.healthz import healthy
from netemu.cli.node_component_cmd import component_rows
from netemu.emulator.launcher import launcher_argv
from netemu.emulator.plan import node_control_socket

SUPERVISOR = textwrap.dedent("""
    import sys, time, types
    from netemu.agent.components import Component
    from netemu.agent.nodesup import NodeSupervisor

    def sleeper(config):
        while True:
            time.sleep(1)

    def crasher(config):
        time.sleep(0.1)
        return 3

    state, sock, logs = sys.argv[1:4]
    comps = (Component("sleepy", sleeper), Component("crashy", crasher), Component("stubborn", sleeper))
    config = types.SimpleNamespace(state_dir=state)
    backoff = (float(sys.argv[4]), 30.0)
    raise SystemExit(NodeSupervisor("n1", config, comps, logs, sock, state, backoff=backoff).run())
""")


def test_back_off_doubles_while_young_and_resets_after_a_good_run():
    assert next_delay(0.0, 0.2) == BACKOFF_FIRST
    delays, d = [], 0.0
    for _ in range(10):
        d = next_delay(d, 0.5)
        delays.append(d)
    assert delays[:4] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST, 8 * BACKOFF_FIRST]
    assert delays[-1] == BACKOFF_MAX and max(delays) == BACKOFF_MAX
    assert next_delay(BACKOFF_MAX, RESET_AFTER) == 0.0


def test_exit_descriptions():
    assert describe_exit(9) == "killed by signal 9 (SIGKILL)"         # raw wait status of a SIGKILL
    assert describe_exit(3 << 8) == "exited with code 3"


def test_kube_proxy_health_rule():
    assert healthy(last_queued=0, last_synced=0, started=100, now=500, timeout=60)        # nothing asked
    assert healthy(last_queued=100, last_synced=110, started=90, now=500, timeout=60)     # done since
    assert healthy(last_queued=450, last_synced=400, started=90, now=480, timeout=60)     # pending, young
    assert not healthy(last_queued=100, last_synced=50, started=90, now=500, timeout=60)  # stuck


def test_component_rows_and_names():
    status = {"node": "w", "components": {"kubelet": {"pid": 5, "restarts": 2, "started_at": 90.0,
                                                      "state": "running", "last_exit": "killed by signal 9"},
                                          "kube-proxy": {"pid": None, "restarts": 1, "state": "waiting",
                                                         "next_start_in": 1.5, "started_at": 0}}}
    rows = component_rows(status, 100.0)
    assert rows[0] == ["w", "kubelet", "5", "running", "10s", "2", "killed by signal 9"]
    assert rows[1][:4] == ["w", "kube-proxy", "-", "waiting (starts in 1.5s)"]
    assert len(node_control_socket("ab12", "x" * 63).encode()) < 108      # a Unix socket path's limit
    argv = launcher_argv("/py", "/s", "iptables")
    assert argv[:3] == ["/py", "-m", "netemu.agent.zygote"] and argv[-2] == proctitle.ROOM_FLAG


def test_a_forked_process_shows_its_own_title():
    code = ("import os, sys, time\nfrom netemu.agent import proctitle\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    proctitle.set_title(['netemu', 'kubelet', '--node', 'w1'], comm='kubelet')\n"
            "    print(os.getpid(), flush=True); time.sleep(5); os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, *proctitle.room_argv(64)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        argv = Path(f"/proc/{child}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        assert argv == [b"netemu", b"kubelet", b"--node", b"w1"]
        assert Path(f"/proc/{child}/comm").read_text().strip() == "kubelet"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def supervised(tmp_path):
    sock = f"/tmp/nodesup-test-{os.getpid()}-{time.monotonic_ns()}.sock"
    log = tmp_path / "nodesup.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path), sock, str(tmp_path), "0.1"],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not os.path.exists(sock):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    yield proc, sock, log, tmp_path
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pid_of(sock: str, name: str, other_than: int | None = None, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = control_request(sock, {"op": "status"})["components"][name]["pid"]
        if pid and pid != other_than:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{name} did not come back")


def test_killed_five_times_in_a_row_it_comes_back_every_time_with_back_off(supervised):
    proc, sock, log, state = supervised
    pid = _pid_of(sock, "sleepy")
    for _ in range(5):
        answer = control_request(sock, {"op": "kill", "component": "sleepy"})
        assert answer == {"ok": True, "component": "sleepy", "killed": pid}
        pid = _pid_of(sock, "sleepy", other_than=pid)
        title = lambda: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]  # noqa: E731
        deadline = time.monotonic() + 10
        while title() != [b"netemu", b"sleepy"] and time.monotonic() < deadline:    # set just after fork
            time.sleep(0.02)
        assert title() == [b"netemu", b"sleepy"]
    status = control_request(sock, {"op": "status"})["components"]["sleepy"]
    assert status["restarts"] == 5 and status["last_exit"].startswith("killed by signal 9 (SIGKILL)")
    text = log.read_text()
    assert "restart 1 in 0.1s (back-off)" in text and "restart 4 in 0.8s (back-off)" in text, text
    assert json.loads((state / "components.json").read_text())["components"]["sleepy"]["pid"] == pid


def test_a_crashing_component_backs_off_and_the_others_are_untouched(supervised):
    proc, sock, log, _state = supervised
    stubborn = _pid_of(sock, "stubborn")
    deadline = time.monotonic() + 30
    while control_request(sock, {"op": "status"})["components"]["crashy"]["restarts"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = control_request(sock, {"op": "status"})["components"]
    assert status["crashy"]["last_exit"].startswith("exited with code 3")
    delays = [float(line.rsplit(" in ", 1)[1].split("s")[0]) for line in log.read_text().splitlines()
              if line.split(" ", 1)[1].startswith("crashy exited with code 3")]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8], log.read_text()       # doubling while it dies young
    assert status["stubborn"]["pid"] == stubborn and status["stubborn"]["restarts"] == 0


def test_restart_is_immediate_and_refuses_unknown_components(supervised):
    proc, sock, log, _state = supervised
    old = _pid_of(sock, "stubborn")
    answer = control_request(sock, {"op": "restart", "component": "stubborn"})
    assert answer["ok"] and answer["pid"] != old
    assert control_request(sock, {"op": "status"})["components"]["stubborn"]["restarts"] == 0
    assert "no component 'kubelet'" in control_request(sock, {"op": "kill", "component": "kubelet"})["error"]
    assert "unknown operation" in control_request(sock, {"op": "nope"})["error"]


def test_a_stopped_component_stays_down_until_started(supervised):
    proc, sock, log, _state = supervised
    old = _pid_of(sock, "stubborn")
    assert control_request(sock, {"op": "stop", "component": "stubborn"})["stopped"] == old
    time.sleep(1.0)                               # ten back-offs' worth: nothing restarts it
    status = control_request(sock, {"op": "status"})["components"]["stubborn"]
    assert status["pid"] is None and status["state"] == "stopped" and status["restarts"] == 0
    answer = control_request(sock, {"op": "start", "component": "stubborn"})
    assert answer["ok"] and answer["pid"] not in (None, old)
    assert "stubborn (pid %d): stop as asked" % old in log.read_text()


def test_sigterm_stops_every_component(supervised):
    proc, sock, log, _state = supervised
    pids = [_pid_of(sock, n) for n in ("sleepy", "stubborn")]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()          # stopped and reaped by their supervisor
    assert not os.path.exists(sock)
    assert "node supervisor stopped" in log.read_text()
