"""netemu up's progress lines: each stage's time as it ends, never negative when a phase comes
back (add-ons applied before the nodes start, waited for after they are Ready: seen at 200
nodes as 'nodes Ready: -95.4s')."""

import io
import re

from rich.console import Console

from netemu.cli.cluster_cmd import Display


def test_a_phase_that_comes_back_gets_no_negative_time():
    console = Console(file=io.StringIO(), width=120)
    display = Display(2, console=console)
    with display:
        timings = {}
        for phase, at in (("hosts", 0.0), ("control-plane", 1.0), ("addons", 2.0), ("agents", 3.0),
                          ("registering", 4.0), ("nodes", 5.0), ("addons", 6.0), ("ready", 7.0)):
            timings.setdefault(phase, at)
            display.update({"phase": phase, "message": "", "timings": dict(timings), "ready": 0})
        out = console.file.getvalue()
    times = {name: float(t) for name, t in re.findall(r"^\s+([a-zA-Z ]+): (-?[0-9.]+)s$", out, re.M)}
    assert set(times) == {"hosts", "control plane", "node processes", "nodes registered", "nodes Ready"}, out
    assert all(t >= 0 for t in times.values()), out
