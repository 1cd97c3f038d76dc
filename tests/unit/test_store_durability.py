"""Durable on acknowledgement: a write the client saw succeed survives kill -9 of the store.

A child process writes as fast as it can and prints each acknowledged (key, revision) only after
the store returned it. The test SIGKILLs the child mid-stream, reopens the database, and checks
that every acknowledged write is there at exactly the acknowledged revision.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from netemu.store.sqlite import SqliteStore

CHILD = textwrap.dedent("""
    import asyncio, sys
    from netemu.store.sqlite import SqliteStore

    async def main(path):
        s = SqliteStore(path)
        i = 0
        while True:
            key = f"/registry/configmaps/default/cm{i}"
            obj = await s.create(key, {"kind": "ConfigMap", "metadata": {"name": f"cm{i}"},
                                       "data": {"i": str(i)}})
            print(key, obj["metadata"]["resourceVersion"], flush=True)
            if i % 3 == 2:   # some updates too, so acknowledged values must be the newest ones
                prev = f"/registry/configmaps/default/cm{i - 1}"
                obj = await s.update(prev, {"kind": "ConfigMap", "metadata": {"name": f"cm{i - 1}"},
                                            "data": {"i": "updated"}})
                print(prev, obj["metadata"]["resourceVersion"], flush=True)
            i += 1

    asyncio.run(main(sys.argv[1]))
""")


def test_acknowledged_writes_survive_sigkill(tmp_path):
    path = str(tmp_path / "state.db")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE,
                             text=True, cwd=root)
    acked: dict[str, int] = {}
    try:
        for line in child.stdout:
            key, rev = line.split()
            acked[key] = int(rev)
            if len(acked) >= 150:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        for line in child.stdout:          # acknowledged before the kill, still in the pipe
            key, rev = line.split()
            acked[key] = int(rev)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 150

    async def check():
        s = SqliteStore(path)
        try:
            assert await s.current_revision() >= max(acked.values())
            for key, rev in acked.items():
                got = await s.get(key)
                assert int(got["metadata"]["resourceVersion"]) >= rev, key
                # nothing else writes these keys, so newer can only be an un-printed later update
                if int(got["metadata"]["resourceVersion"]) != rev:
                    assert got["data"] == {"i": "updated"}
        finally:
            await s.close()
    asyncio.run(check())
