"""What only the embedded SQLite store does: bounded history, reopen, one owner, slow watchers."""

from __future__ import annotations

import asyncio

import pytest

from netemu.api.errors import Gone
from netemu.store.sqlite import SqliteStore, StoreLocked
from tests.unit.test_store_harness import take

PODS = "/registry/pods/default/"


def pod(name: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, **extra}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_automatic_compaction_keeps_the_log_table_bounded(tmp_path):
    async def main():
        async with SqliteStore(str(tmp_path / "db"), history=8) as s:
            for i in range(40):
                await s.create(PODS + f"p{i}", pod(f"p{i}"))
            kept = s._wconn.execute("SELECT COUNT(*) FROM log").fetchone()[0]
            assert 8 <= kept <= 8 + 1
    run(main())


def test_reopen_keeps_objects_revision_and_history(tmp_path):
    path = str(tmp_path / "db")

    async def first():
        s = SqliteStore(path)
        try:
            await s.create(PODS + "a", pod("a"))
            await s.update(PODS + "a", pod("a", spec={"v": 2}))
            await s.create(PODS + "b", pod("b"))
            await s.compact(2)
        finally:
            await s.close()

    async def second():
        s = SqliteStore(path)
        try:
            assert await s.current_revision() == 3
            assert (await s.get(PODS + "a"))["metadata"]["resourceVersion"] == "2"
            with pytest.raises(Gone):
                await s.watch("/registry/", 0).__anext__()
            w = s.watch("/registry/", 1)
            assert [e.revision for e in await take(w, 2)] == [2, 3]
            c = await s.create(PODS + "c", pod("c"))
            assert c["metadata"]["resourceVersion"] == "4"
            assert [e.revision for e in await take(w, 1)] == [4]
            await w.aclose()
        finally:
            await s.close()
    run(first())
    run(second())


def test_second_opener_is_refused_while_first_is_open(tmp_path):
    path = str(tmp_path / "db")
    s = SqliteStore(path)
    try:
        with pytest.raises(StoreLocked):
            SqliteStore(path)
    finally:
        run(s.close())
    run(SqliteStore(path).close())     # free again after close


def test_slow_watcher_overflow_catches_up_from_history(tmp_path):
    async def main():
        s = SqliteStore(str(tmp_path / "db"), max_watch_buffer=3)
        try:
            w = s.watch("/registry/", 0)
            first = asyncio.ensure_future(w.__anext__())
            await s.create(PODS + "p0", pod("p0"))
            assert (await first).revision == 1
            for i in range(1, 20):                    # nobody reads: the buffer overflows
                await s.create(PODS + f"p{i}", pod(f"p{i}"))
            assert [e.revision for e in await take(w, 19)] == list(range(2, 21))
            await w.aclose()
        finally:
            await s.close()
    run(main())


def test_slow_watcher_behind_compacted_history_gets_gone(tmp_path):
    async def main():
        s = SqliteStore(str(tmp_path / "db"), history=4, max_watch_buffer=2)
        try:
            w = s.watch("/registry/", 0)
            first = asyncio.ensure_future(w.__anext__())
            await s.create(PODS + "p0", pod("p0"))
            await first
            for i in range(1, 30):
                await s.create(PODS + f"p{i}", pod(f"p{i}"))
            with pytest.raises(Gone):
                await take(w, 29)
        finally:
            await s.close()
    run(main())


def test_close_ends_live_watches(tmp_path):
    async def main():
        s = SqliteStore(str(tmp_path / "db"))
        w = s.watch("/registry/", 0)
        pending = asyncio.ensure_future(w.__anext__())
        await asyncio.sleep(0.05)
        await s.close()
        with pytest.raises(StopAsyncIteration):
            await pending
    run(main())


def test_failed_write_in_a_batch_leaves_the_others_committed(tmp_path):
    async def main():
        s = SqliteStore(str(tmp_path / "db"))
        try:
            await s.create(PODS + "dup", pod("dup"))
            results = await asyncio.gather(
                s.create(PODS + "x", pod("x")), s.create(PODS + "dup", pod("dup")),
                s.create(PODS + "y", pod("y")), return_exceptions=True)
            assert isinstance(results[1], Exception)
            assert [r["metadata"]["resourceVersion"] for r in (results[0], results[2])] == ["2", "3"]
            assert await s.current_revision() == 3
        finally:
            await s.close()
    run(main())


def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(tmp_path):
    import hashlib
    import sqlite3

    from netemu.store.sqlite import StoreOpenError
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a database at all\n" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    for path, words in ((text, "not a netemu store"), (other, "another SQLite database")):
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        with pytest.raises(StoreOpenError, match=words):
            SqliteStore(str(path))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with pytest.raises(StoreOpenError, match="cannot open"):
        SqliteStore(str(tmp_path / "no" / "such" / "dir.db"))


def test_a_new_database_is_private_to_its_owner(tmp_path):
    import stat

    async def main():
        async with SqliteStore(str(tmp_path / "db")) as s:
            await s.create("/registry/secrets/default/s", {"kind": "Secret", "data": {"k": "djE="}})
            for name in ("db", "db-wal", "db-shm"):      # while open, all three exist
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    run(main())


def test_a_failing_commit_fails_its_writes_and_the_store_goes_on(tmp_path, monkeypatch):
    """An I/O error at COMMIT (simulated) is a 500 for the writes in that batch, nothing of
    them is visible or acknowledged, and the revision sequence continues without a gap."""
    async def main():
        async with SqliteStore(str(tmp_path / "db")) as s:
            await s.create(PODS + "a", pod("a"))
            real = s._writer.flush_meta

            def broken():
                raise OSError("disk I/O error (simulated)")
            s._writer.flush_meta = broken
            from netemu.api.errors import InternalError, NotFound
            with pytest.raises(InternalError, match="simulated"):
                await s.create(PODS + "b", pod("b"))
            s._writer.flush_meta = real
            with pytest.raises(NotFound):
                await s.get(PODS + "b")
            c = await s.create(PODS + "c", pod("c"))
            assert c["metadata"]["resourceVersion"] == "2"
            assert await s.current_revision() == 2
    run(main())
