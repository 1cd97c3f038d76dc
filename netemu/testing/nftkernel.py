"""A fake nftables kernel behind the ``commands.Exec`` interface, for proxier tests without root.

It answers the argv the nftables mode runs -- ``nft -f -`` and ``nft -c -f -`` (transactions,
applied atomically to an in-memory Table, refused as nft would refuse them), ``nft --version``,
``nft list chains|sets FAMILY``, ``nft list chain|table ...``, ``nft delete table``, and
``conntrack`` -- and records every call. ``fail_next`` makes the next transaction fail, as a
kernel that refuses it would; ``missing`` makes probe transactions using a statement fail, as a
kernel without that module would.
"""

from __future__ import annotations

from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.nftables.table import NftError, Table


class FakeNftKernel:
    def __init__(self, version: str = "nftables v1.0.6 (Lester Gooch #5)"):
        self.tables: dict[tuple[str, str], Table] = {}
        self.version = version
        self.calls: list[tuple[list[str], str | None]] = []
        self.transactions: list[str] = []
        self.fail_next = 0
        self.missing: tuple[str, ...] = ()

    def __call__(self, argv: list[str], input: str | None = None) -> Result:
        self.calls.append((list(argv), input))
        if argv[0] == "conntrack":
            return Result(1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n")
        if argv[0] != "nft":
            return Result(127, "", f"{argv[0]}: not in the fake kernel")
        args = argv[1:]
        if args == ["--version"]:
            return Result(0, self.version + "\n")
        if args[:2] in (["-f", "-"], ["-c", "-f"]):
            return self._transaction(input or "", check=args[0] == "-c")
        if args[:1] == ["list"]:
            return self._list(args[1:])
        if args[:2] == ["delete", "table"] and len(args) == 4:
            if (args[2], args[3]) not in self.tables:
                return Result(1, "", "Error: No such file or directory\n")
            del self.tables[(args[2], args[3])]
            return Result(0)
        return Result(1, "", f"Error: the fake kernel does not know {' '.join(argv)}\n")

    def _transaction(self, text: str, check: bool) -> Result:
        if any(word in text for word in self.missing):
            return Result(1, "", "Error: Could not process rule: No such file or directory\n")
        if not check and self.fail_next:
            self.fail_next -= 1
            return Result(1, "", "Error: Could not process rule: Device or resource busy\n")
        work = {k: t.copy() for k, t in self.tables.items()}
        try:
            for key, lines in _by_table(text).items():
                table = work.get(key) or Table(key[0], key[1], exists=False)
                table.apply(lines)
                if table.exists:
                    work[key] = table
                else:
                    work.pop(key, None)
        except NftError as exc:
            return Result(1, "", f"Error: {exc}\n")
        if not check:
            self.tables = work
            self.transactions.append(text)
        return Result(0)

    def _list(self, args: list[str]) -> Result:
        kind = args[0] if args else ""
        if kind in ("chains", "sets") and len(args) == 2:
            out = []
            for (fam, name), t in sorted(self.tables.items()):
                if fam != args[1]:
                    continue
                out.append(f"table {fam} {name} {{")
                names = t.chains if kind == "chains" else {n for n, s in t.sets.items() if s.kind == "set"}
                out += [f"\t{kind[:-1]} {n} {{\n\t}}" for n in sorted(names)]
                out.append("}")
            return Result(0, "\n".join(out) + "\n")
        if kind in ("table", "chain") and len(args) >= 3:
            table = self.tables.get((args[1], args[2]))
            if table is None or (kind == "chain" and (len(args) < 4 or args[3] not in table.chains)):
                return Result(1, "", "Error: No such file or directory\n")
            return Result(0, table.dump())
        if kind == "tables":
            return Result(0, "".join(f"table {f} {n}\n" for f, n in sorted(self.tables)))
        return Result(1, "", f"Error: the fake kernel cannot list {' '.join(args)}\n")

    def table(self, family: str = "ip", name: str = "kube-proxy") -> Table | None:
        return self.tables.get((family, name))


def _by_table(text: str) -> dict[tuple[str, str], str]:
    """The transaction's lines grouped by the table they address (in order)."""
    out: dict[tuple[str, str], list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 4 and words[1] in ("table", "chain", "set", "map", "rule", "element"):
            out.setdefault((words[2], words[3]), []).append(line)
    return {k: "\n".join(v) + "\n" for k, v in out.items()}
