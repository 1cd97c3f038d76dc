"""A fake node kernel for the IPVS mode's applier and proxier: IPVS table, kube-ipvs0, ipsets,
iptables and sysctls in memory, every change recorded.

``FakeIpvsKernel`` stands in for ipvs/kernel.py's ``NetlinkKernel`` (the IPVS table refuses what
the real one refuses: a virtual server that exists, a real server that does not); ``FakeNodeExec``
for the ``Exec`` the applier runs ``ipset``, ``iptables-*`` and ``sysctl`` through. Connection
counts of real servers are set by the test (``conns``) to drive graceful termination. Nothing here
touches a kernel: the unit tests of "only the differences are sent" run on any host.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from netemu.agent.proxy.commands import Result
from netemu.agent.proxy.ipvs import sets as S
from netemu.agent.proxy.ipvs.kernel import KernelMissing, Op
from netemu.agent.proxy.ipvs.netlink import NetlinkError
from netemu.agent.proxy.ipvs.state import RealServer, VirtualServer, VSKey
from netemu.agent.proxy.xtables.dump import BUILTIN_CHAINS
from netemu.agent.proxy.xtables.rule import tokenize


@dataclass
class FakeIpvsKernel:
    node_addresses_: list[str] = field(default_factory=lambda: ["172.18.0.2", "10.244.0.1"])
    has_ipvs: bool = True
    services_: dict[VSKey, VirtualServer] = field(default_factory=dict)
    reals_: dict[VSKey, dict[tuple[str, int], RealServer]] = field(default_factory=dict)
    dummy: bool = False
    dummy_addrs: set[str] = field(default_factory=set)
    conns: dict[tuple[VSKey, tuple[str, int]], tuple[int, int]] = field(default_factory=dict)
    batches: list[list[Op]] = field(default_factory=list)       # every apply(), in order
    address_changes: list[tuple[list[str], list[str]]] = field(default_factory=list)
    reads: int = 0                                              # services()/reals() calls
    timeouts: tuple[int, int, int] | None = None                # set by set_timeouts (ipvsadm --set)

    # -- IPVS ---------------------------------------------------------------------------------
    def services(self) -> dict[VSKey, VirtualServer]:
        self.reads += 1
        return dict(self.services_)

    def reals(self, key: VSKey) -> list[RealServer]:
        self.reads += 1
        return [rs._replace(active=self.conns.get((key, ep), (0, 0))[0], inactive=self.conns.get((key, ep), (0, 0))[1])
                for ep, rs in self.reals_.get(key, {}).items()]

    def apply(self, ops: list[Op]) -> None:
        self.batches.append(list(ops))
        failures = []
        for op in ops:
            code = self._one(op)
            if code:
                failures.append((str(op), code))
        if failures:
            raise NetlinkError(failures)

    def _one(self, op: Op) -> int:
        key = op.server.key
        if op.kind == "add_service":
            if key in self.services_:
                return errno.EEXIST
            self.services_[key], self.reals_[key] = op.server, {}
        elif op.kind in ("set_service", "del_service"):
            if key not in self.services_:
                return errno.ESRCH
            if op.kind == "set_service":
                self.services_[key] = op.server
            else:
                del self.services_[key], self.reals_[key]
        elif key not in self.services_:
            return errno.ESRCH
        elif op.kind == "add_dest":
            if op.real.endpoint in self.reals_[key]:
                return errno.EEXIST
            self.reals_[key][op.real.endpoint] = op.real._replace(active=0, inactive=0)
        elif op.real.endpoint not in self.reals_[key]:
            return errno.ENOENT
        elif op.kind == "set_dest":
            self.reals_[key][op.real.endpoint] = op.real._replace(active=0, inactive=0)
        else:
            del self.reals_[key][op.real.endpoint]
        return 0

    def weights(self) -> dict[str, dict[str, int]]:
        """{virtual server: {real server: weight}} for assertions."""
        return {str(k): {str(rs): rs.weight for rs in v.values()} for k, v in self.reals_.items()}

    # -- kube-ipvs0 ----------------------------------------------------------------------------
    def ensure_dummy(self) -> None:
        self.dummy = True

    def delete_dummy(self) -> bool:
        existed, self.dummy = self.dummy, False
        self.dummy_addrs.clear()
        return existed

    def dummy_addresses(self) -> set[str]:
        return set(self.dummy_addrs)

    def node_addresses(self) -> list[str]:
        return list(self.node_addresses_)

    def change_addresses(self, add: list[str], remove: list[str]) -> None:
        if not self.dummy:
            raise KernelMissing("kube-ipvs0 does not exist")
        self.address_changes.append((list(add), list(remove)))
        self.dummy_addrs |= set(add)
        self.dummy_addrs -= set(remove)

    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int) -> None:
        self.timeouts = (tcp, tcp_fin, udp)

    def close(self) -> None:
        pass


class FakeNodeExec:
    """``ipset`` (save, -exist restore, list -n, destroy), ``iptables-*`` (--version, -save,
    -restore, -S/-C/-N/-I) and ``sysctl -w`` on in-memory state; every argv recorded."""

    def __init__(self, fail: str | None = None):
        self.calls: list[tuple[list[str], str | None]] = []
        self.set_types: dict[str, str] = {}
        self.sets: dict[str, set[str]] = {}
        self.restores: list[str] = []            # iptables-restore inputs
        self.jumps: dict[tuple[str, str], list[str]] = {}   # (table, builtin chain) -> rule specs
        self.sysctls: dict[str, str] = {}
        self.fail = fail                          # argv[0] (or "ipset restore") made to fail

    def __call__(self, argv: list[str], input: str | None = None) -> Result:
        self.calls.append((list(argv), input))
        tool = argv[0]
        if self.fail and (tool == self.fail or " ".join(argv[:1] + argv[-1:]) == self.fail):
            return Result(1, "", f"{tool}: made to fail")
        if tool == "ipset":
            return self._ipset(argv[1:], input or "")
        if tool.startswith("iptables") or tool.startswith("ip6tables"):
            return self._iptables(tool, argv[1:], input or "")
        if tool == "sysctl":
            self.sysctls.update(a.split("=", 1) for a in argv[2:])
            return Result(0)
        if tool == "conntrack":
            return Result(1, "", "0 flow entries have been deleted.")
        return Result(127, "", f"{tool}: not faked")

    def argvs(self, tool: str) -> list[list[str]]:
        return [a for a, _ in self.calls if a[0] == tool]

    def _ipset(self, args: list[str], text: str) -> Result:
        args = [a for a in args if a != "-exist"]
        if args == ["save"]:
            lines = []
            for name, kind in self.set_types.items():
                lines.append(f"create {name} {kind} comment")
                lines += [f"add {name} {e}" for e in sorted(self.sets[name])]
            return Result(0, "\n".join(lines) + "\n")
        if args == ["list", "-n"]:
            return Result(0, "".join(f"{n}\n" for n in self.set_types))
        if args[:1] == ["destroy"]:
            self.set_types.pop(args[1], None)
            self.sets.pop(args[1], None)
            return Result(0)
        if args == ["restore"]:
            for line in text.splitlines():
                verb, name, rest = line.split(" ", 2)
                if verb == "create":
                    self.set_types.setdefault(name, rest.split(" ")[0])
                    self.sets.setdefault(name, set())
                elif name not in self.set_types:
                    return Result(1, "", f"ipset v7.17: Error in line: The set with the given name does not exist")
                elif verb == "add":
                    self.sets[name].add(S.canonical(self.set_types[name], rest))
                elif verb == "del":
                    self.sets[name].discard(S.canonical(self.set_types[name], rest))
            return Result(0)
        return Result(1, "", f"ipset {' '.join(args)}: not faked")

    def _iptables(self, tool: str, args: list[str], text: str) -> Result:
        if args == ["--version"]:
            return Result(0, "iptables v1.8.9 (nf_tables)\n")
        if tool.endswith("-restore"):
            self.restores.append(text)
            table = ""
            for line in text.splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith("-I "):
                    words = line.split(" ", 2)
                    self.jumps.setdefault((table, words[1]), []).insert(0, words[2])
            return Result(0)
        if tool.endswith("-save"):
            table = args[args.index("-t") + 1]
            lines = [f"*{table}", *(f":{c} ACCEPT [0:0]" for c in BUILTIN_CHAINS[table])]
            lines += [f"-A {c} {s}" for (t, c), specs in self.jumps.items() if t == table for s in specs]
            return Result(0, "\n".join([*lines, "COMMIT"]) + "\n")
        words = [a for a in args if a not in ("-w", "5", "-W", "100000")]
        table, op, chain = words[1], words[2], words[3] if len(words) > 3 else ""
        if op == "-N":
            return Result(0)
        if op == "-S":
            specs = self.jumps.get((table, chain), [])
            return Result(0, "".join(f"-A {chain} {s}\n" for s in specs))
        spec = " ".join(f'"{w}"' if " " in w else w for w in words[4:])
        if op == "-C":
            found = any(tokenize(s) == words[4:] for s in self.jumps.get((table, chain), []))
            return Result(0 if found else 1)
        if op == "-I":
            self.jumps.setdefault((table, chain), []).insert(0, spec)
            return Result(0)
        return Result(1, "", f"{tool} {' '.join(args)}: not faked")
