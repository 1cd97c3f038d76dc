"""Durable on acknowledgement: a write the client saw succeed survives kill -9 of the store.

A child process writes as fast as it can (8 concurrent writers, so acknowledgements come out of
group commits) and prints each (key, revision) only after the store returned it. The test SIGKILLs
the child mid-stream, reopens the database, and checks that every acknowledged write is there at
the acknowledged revision (or a later update of the same key). An "ack before COMMIT" bug fails it.
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

    def cm(name, value):
        return {"kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": value}}

    async def writer(s, w):
        # 8 of these run at once, so acknowledgements come out of group commits
        i = 0
        while True:
            key = f"/registry/configmaps/default/w{w}-{i}"
            obj = await s.create(key, cm(f"w{w}-{i}", str(i)))
            print(key, obj["metadata"]["resourceVersion"], flush=True)
            if i % 3 == 2:   # some updates too: the acknowledged value must be the newest one
                prev = f"/registry/configmaps/default/w{w}-{i - 1}"
                obj = await s.update(prev, cm(f"w{w}-{i - 1}", "updated"))
                print(prev, obj["metadata"]["resourceVersion"], flush=True)
            i += 1

    async def main(path):
        s = SqliteStore(path)
        await asyncio.gather(*(writer(s, w) for w in range(8)))

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
            if len(acked) >= 400:
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
    assert len(acked) >= 400

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
