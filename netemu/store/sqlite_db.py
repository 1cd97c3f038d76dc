"""The SQL side of the embedded store: schema, one write, reads at a revision, history.

Synchronous functions over a ``sqlite3.Connection``; ``sqlite.py`` runs them on its writer and
reader threads. Three tables:

- ``kv``: the current value of every live key with its create and mod revision;
- ``log``: one row per write (the event history) with the new and the previous value, kept for
  revisions >= the compacted revision. It is both the watch history and the undo log that makes
  a list at an older revision possible (current state minus the writes made after it);
- ``meta``: the global ``revision`` and the ``compacted`` revision.

Compaction follows etcd: after compacting at C the state at C is still readable and watches
from ``since >= C - 1`` still work (they need the events from C on); anything older is ``Gone``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from netemu.api.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound
from netemu.store.base import ADDED, DELETED, MODIFIED
from netemu.store.fanout import Change
from netemu.store.keys import prefix_end

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT, prev_value TEXT, prev_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""


class NotOurDatabase(Exception):
    """The file is not a netemu store (not SQLite, or another program's database)."""


OUR_COLUMNS = {"kv": "key, value, create_rev, mod_rev",
               "log": "rev, type, key, value, prev_value, prev_rev", "meta": "name, value"}


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=FULL``: COMMIT returns only after the WAL is
    fsynced, so an acknowledged write survives kill -9 and power loss alike.

    The writer's connection first checks the file is empty or ours, before anything (even the
    journal mode) is changed: pointing ``--store`` at the wrong file must not damage it."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        try:
            _check_ours(conn, path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(SCHEMA)
        except BaseException:
            conn.close()
            raise
    return conn


def _check_ours(conn: sqlite3.Connection, path: str) -> None:
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise NotOurDatabase(f"{path} is not a netemu store: {exc}") from None
    if not tables:
        return
    try:
        for table, columns in OUR_COLUMNS.items():
            conn.execute(f"SELECT {columns} FROM {table} LIMIT 0")
    except sqlite3.DatabaseError:
        raise NotOurDatabase(f"{path} is not a netemu store: it is another SQLite database "
                             f"(tables: {', '.join(sorted(tables))})") from None


def read_meta(conn: sqlite3.Connection) -> tuple[int, int]:
    """(revision, compacted). The revision is the newest log row's (compaction always keeps the
    newest event), so a write touches no meta page; ``meta.revision`` covers an empty log."""
    rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    newest = conn.execute("SELECT MAX(rev) FROM log").fetchone()[0] or 0
    return max(rows["revision"], newest), rows["compacted"]


def _range_sql(prefix: str, start_after: str | None) -> tuple[str, list]:
    """WHERE clause for keys under ``prefix`` (and after ``start_after``)."""
    clauses, args = ["key >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("key < ?")
        args.append(end)
    if start_after is not None:
        clauses.append("key > ?")
        args.append(start_after)
    return " AND ".join(clauses), args


@dataclass
class Writer:
    """Applies writes inside the caller's transaction; tracks revision/compacted in memory so a
    batch needs no meta reads (``flush_meta`` writes them only after a compaction)."""

    conn: sqlite3.Connection
    revision: int
    compacted: int
    meta_dirty: bool = False

    def _current(self, key: str) -> tuple[str, int, int] | None:
        return self.conn.execute(
            "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()

    def _log(self, change: Change) -> Change:
        self.conn.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)",
                          (change.revision, change.type, change.key, change.value,
                           change.prev_value, change.prev_revision))
        self.revision = change.revision
        return change

    def create(self, key: str, value: str) -> Change:
        if self._current(key) is not None:
            raise AlreadyExists(f"key {key} already exists", details={"key": key})
        rev = self.revision + 1
        self.conn.execute("INSERT INTO kv VALUES (?, ?, ?, ?)", (key, value, rev, rev))
        return self._log(Change(rev, ADDED, key, value, None, 0))

    def _check(self, key: str, expected: int | None) -> tuple[str, int, int]:
        cur = self._current(key)
        if cur is None:
            raise NotFound(f"key {key} not found", details={"key": key})
        if expected is not None and cur[2] != expected:
            raise Conflict(f"Operation cannot be fulfilled on {key}: the object has been modified; "
                           "please apply your changes to the latest version and try again",
                           details={"key": key})
        return cur

    def update(self, key: str, value: str, expected: int | None) -> Change:
        prev_value, _, prev_rev = self._check(key, expected)
        rev = self.revision + 1
        self.conn.execute("UPDATE kv SET value = ?, mod_rev = ? WHERE key = ?", (value, rev, key))
        return self._log(Change(rev, MODIFIED, key, value, prev_value, prev_rev))

    def delete(self, key: str, expected: int | None) -> Change:
        prev_value, _, prev_rev = self._check(key, expected)
        rev = self.revision + 1
        self.conn.execute("DELETE FROM kv WHERE key = ?", (key,))
        return self._log(Change(rev, DELETED, key, None, prev_value, prev_rev))

    def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (etcd semantics); compacting the past is a no-op."""
        if revision > self.revision:
            raise BadRequest(f"cannot compact at revision {revision}: newer than the current "
                             f"revision {self.revision}")
        if revision <= self.compacted:
            return
        self.conn.execute("DELETE FROM log WHERE rev < ?", (revision,))
        self.compacted = revision
        self.meta_dirty = True

    def auto_compact(self, history: int) -> None:
        """Keep the newest ``history`` events; compact in steps of ~1/8 so it is amortised."""
        kept = self.revision - max(self.compacted, 1) + 1
        if kept > history + max(1, history // 8):
            self.compact(self.revision - history + 1)

    def flush_meta(self) -> None:
        if not self.meta_dirty:
            return
        self.meta_dirty = False
        self.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self.revision,))
        self.conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (self.compacted,))


def get(conn: sqlite3.Connection, key: str) -> tuple[str, int] | None:
    return conn.execute("SELECT value, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()


def list_range(conn: sqlite3.Connection, prefix: str, limit: int | None, start_after: str | None,
               revision: int | None) -> tuple[list[tuple[str, str, int]], int, bool]:
    """([(key, value, mod_rev)], revision, more) in one read transaction (one snapshot)."""
    conn.execute("BEGIN")
    try:
        current, compacted = read_meta(conn)
        if revision is None or revision == current:
            rows, more = _list_current(conn, prefix, limit, start_after)
            return rows, current, more
        if revision > current:
            raise BadRequest(f"revision {revision} is newer than the current revision {current}")
        if revision < compacted:
            raise Gone(f"required revision {revision} has been compacted (compacted at {compacted})")
        rows, more = _list_at(conn, prefix, limit, start_after, revision)
        return rows, revision, more
    finally:
        conn.execute("COMMIT")


def _list_current(conn, prefix, limit, start_after):
    where, args = _range_sql(prefix, start_after)
    sql = f"SELECT key, value, mod_rev FROM kv WHERE {where} ORDER BY key"
    if limit is not None:
        sql += f" LIMIT {int(limit) + 1}"
    rows = conn.execute(sql, args).fetchall()
    if limit is not None and len(rows) > limit:
        return rows[:limit], True
    return rows, False


def _list_at(conn, prefix, limit, start_after, revision):
    """The list as it was at ``revision``: current rows, with every key written after
    ``revision`` replaced by its value before the first such write (or removed)."""
    where, args = _range_sql(prefix, start_after)
    undo: dict[str, tuple[str | None, int]] = {}
    for key, prev_value, prev_rev in conn.execute(
            f"SELECT key, prev_value, prev_rev FROM log WHERE rev > ? AND {where} ORDER BY rev",
            [revision, *args]):
        undo.setdefault(key, (prev_value, prev_rev))
    sql = f"SELECT key, value, mod_rev FROM kv WHERE {where} ORDER BY key"
    fetch = None if limit is None else int(limit) + len(undo) + 1
    if fetch is not None:
        sql += f" LIMIT {fetch}"
    rows = conn.execute(sql, args).fetchall()
    # If the fetch was cut, only keys up to the last fetched one are known to be complete;
    # at least limit+1 of those survive the undo, so "more" stays exact.
    bound = rows[-1][0] if fetch is not None and len(rows) == fetch else None
    state = {k: (v, r) for k, v, r in rows if k not in undo}
    for key, (value, rev) in undo.items():
        if value is not None and (bound is None or key <= bound):
            state[key] = (value, rev)
    out = [(k, v, r) for k, (v, r) in sorted(state.items())]
    if limit is not None and len(out) > limit:
        return out[:limit], True
    return out, False


def history(conn: sqlite3.Connection, prefix: str, since: int) -> list[Change]:
    """Events under ``prefix`` with revision > ``since``; ``Gone`` when they were compacted."""
    conn.execute("BEGIN")
    try:
        _, compacted = read_meta(conn)
        if since + 1 < compacted:
            raise Gone(f"too old resource version: {since} (compacted at {compacted})")
        where, args = _range_sql(prefix, None)
        rows = conn.execute(
            f"SELECT rev, type, key, value, prev_value, prev_rev FROM log WHERE rev > ? AND {where} "
            "ORDER BY rev", [since, *args]).fetchall()
        return [Change(*row) for row in rows]
    finally:
        conn.execute("COMMIT")
