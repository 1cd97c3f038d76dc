"""The watch stream's line splitter: records across chunk boundaries, many records per chunk
(the API server batches events into one write), blank lines, and a last unterminated record."""

from __future__ import annotations

import asyncio
import json
import random

from netemu.client.rest import _lines


class _Stream:
    def __init__(self, chunks):
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


def _collect(chunks):
    async def main():
        return [line async for line in _lines(_Stream(chunks))]
    return asyncio.run(main())


def test_records_split_anywhere_come_out_whole():
    records = [json.dumps({"type": "ADDED", "object": {"n": i, "pad": "x" * (i * 37 % 300)}}).encode()
               for i in range(200)]
    data = b"".join(r + b"\n" for r in records)
    rng = random.Random(5)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 40))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
        assert _collect(chunks) == records


def test_blank_lines_skipped_and_unterminated_tail_kept():
    assert _collect([b"a\n\n  \nb", b"c\n", b"d"]) == [b"a", b"bc", b"d"]
    assert _collect([b"x", b"y", b"z"]) == [b"xyz"]
    assert _collect([]) == []
