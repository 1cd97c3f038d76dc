"""The thin edge of the nftables mode: run a transaction, list what exists, check the system.

Two ways to hand a transaction to the kernel, both atomic (one netlink batch: all of it applies
or none): ``nft -f -`` through the injectable ``Exec`` (a fake in unit tests, ``ip netns exec``
for a node namespace, plain argv on a node), or libnftables in this process (python3-nftables,
Debian's binding of the library nft itself uses), which saves the fork and exec of ``nft`` and
the parse of its own start-up. libnftables works only in the process's own network namespace,
so it is used only with ``local_exec``; ``auto`` picks it when it can (docs/benchmarks.md has
the measurement behind that default). The text is built from object names and IPs, never run
through a shell.

``preflight()`` is what upstream's kube-proxy checks before it starts the mode (nft >= 1.0.1,
the kernel's nf_tables) plus what this mode's rules use: it checks a probe transaction with
every kind of statement kube-proxy writes (``nft -c``: the kernel validates, nothing is
applied) and names the first one this kernel or nft cannot do.
"""

from __future__ import annotations

import logging
import re

from netemu.agent.proxy.commands import Exec, Result, local_exec

from .builder import TABLE

# patterns compiled at import (in the launcher template), not in each process that first uses them
_VERSION = re.compile(r"v(\d+)\.(\d+)(?:\.(\d+))?")

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nft", "libnftables")
MIN_NFT_VERSION = (1, 0, 1)          # upstream: knftables.New refuses older nft


class NftApplyError(RuntimeError):
    """A transaction or listing failed; the message carries nft's own words."""


class NftUnsupported(RuntimeError):
    """This system cannot run the nftables mode; the message names what is missing."""


class Nft:
    """nft for one table family, through an Exec or libnftables."""

    def __init__(self, exec_: Exec = local_exec, backend: str = "auto", family: str = "ip"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown nftables backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.exec = exec_
        self.family = family
        self._lib = None
        if backend in ("auto", "libnftables") and exec_ is local_exec:
            self._lib = _libnftables()
        if backend == "libnftables" and self._lib is None:
            raise ValueError("libnftables backend: the python3-nftables binding is not importable here, "
                             "or the proxier runs commands in another namespace (use --nft-backend nft)")
        self.backend = "libnftables" if self._lib is not None else "nft"

    def _cmd(self, argv: list[str], text: str | None = None) -> Result:
        if self._lib is None:
            return self.exec(argv, text)
        if text is not None:                     # nft -f - / nft -c -f -
            self._lib.set_dry_run("-c" in argv)
            try:
                rc, out, err = self._lib.cmd(text)
            finally:
                self._lib.set_dry_run(False)
        else:
            rc, out, err = self._lib.cmd(" ".join(a for a in argv[1:] if not a.startswith("-")))
        return Result(rc, out, err)

    def run(self, text: str) -> None:
        """Apply one transaction atomically; NftApplyError with nft's message if refused."""
        if not text:
            return
        done = self._cmd(["nft", "-f", "-"], text)
        if done.returncode != 0:
            raise NftApplyError(f"nft -f failed (exit {done.returncode}): {done.stderr.strip()[:2000]}")

    def check(self, text: str) -> Result:
        """``nft -c -f -``: the kernel validates the transaction, nothing is applied."""
        return self._cmd(["nft", "-c", "-f", "-"], text)

    def table_exists(self) -> bool | None:
        """Is our table (its nat-prerouting chain: a few lines to list) there? None when nft
        itself failed for another reason."""
        done = self._cmd(["nft", "list", "chain", self.family, TABLE, "nat-prerouting"])
        if done.returncode == 0:
            return True
        return False if "No such file or directory" in done.stderr or "does not exist" in done.stderr else None

    def names(self) -> tuple[set[str], set[str]]:
        """(chains, sets) of our table, from ``nft list chains`` / ``nft list sets`` of the family
        (cheap: no rules, no elements); both empty when the table does not exist."""
        chains = _names_in(self._list(["nft", "list", "chains", self.family]), "chain")
        sets = _names_in(self._list(["nft", "list", "sets", self.family]), "set")
        return chains, sets

    def _list(self, argv: list[str]) -> str:
        done = self._cmd(argv)
        if done.returncode != 0:
            raise NftApplyError(f"{' '.join(argv)} failed: {done.stderr.strip()[:500]}")
        return done.stdout

    def listing(self) -> str:
        return self._list(["nft", "list", "table", self.family, TABLE])

    def delete_table(self) -> bool:
        return self._cmd(["nft", "delete", "table", self.family, TABLE]).returncode == 0

    # ---- can this system run the mode? --------------------------------------------------

    def preflight(self) -> None:
        """NftUnsupported naming what is missing (nft, its version, a kernel feature)."""
        try:
            version = self.exec(["nft", "--version"])
        except FileNotFoundError:
            raise NftUnsupported("nftables mode needs the nft binary (Debian: apt-get install nftables)") from None
        if version.returncode != 0:
            raise NftUnsupported(f"nft --version failed: {version.stderr.strip()[:300]}")
        found = parse_version(version.stdout)
        if found is None or found < MIN_NFT_VERSION:
            raise NftUnsupported(f"nftables mode needs nft >= {'.'.join(map(str, MIN_NFT_VERSION))} "
                                 f"(found: {version.stdout.strip() or 'unknown'})")
        for what, lines in PROBES:
            done = self.check(_probe_text(self.family, lines))
            if done.returncode != 0:
                raise NftUnsupported(f"nftables mode: this kernel or nft cannot do {what}: "
                                     f"{_first_error(done.stderr)}")


def parse_version(text: str) -> tuple[int, ...] | None:
    m = _VERSION.search(text)
    return tuple(int(x or 0) for x in m.groups()) if m else None


_PROBE_TABLE = "kube-proxy-probe"
# (what, probe lines): every kind of statement the mode writes, checked one kind at a time so
# the error can name the one that is missing
PROBES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nf_tables (the table itself)", ("add table {f} {t}",)),
    ("base chains in the nat and filter hooks",
     ("add chain {f} {t} np {{ type nat hook prerouting priority -100 ; }}",
      "add chain {f} {t} fp {{ type filter hook forward priority -110 ; }}")),
    ("verdict maps over address . protocol . port (nft_lookup, concatenations)",
     ("add chain {f} {t} c", "add map {f} {t} m {{ type {a} . inet_proto . inet_service : verdict ; }}",
      "add rule {f} {t} c {x} daddr . meta l4proto . th dport vmap @m")),
    ("numgen random load balancing (nft_numgen)",
     ("add chain {f} {t} c", "add chain {f} {t} e", "add rule {f} {t} c numgen random mod 2 vmap {{ 0 : goto e , 1 : goto e }}")),
    ("fib address-type matches (nft_fib)", ("add chain {f} {t} c", "add rule {f} {t} c fib saddr type local return")),
    ("conntrack state matches (nft_ct)", ("add chain {f} {t} c", "add rule {f} {t} c ct state new return")),
    ("dynamic sets with timeouts (session affinity, nft_dynset)",
     ("add chain {f} {t} c", "add set {f} {t} s {{ type {a} ; flags dynamic,timeout ; timeout 10800s ; }}",
      "add rule {f} {t} c update @s {{ {x} saddr }}")),
    ("DNAT (nft_nat)", ("add chain {f} {t} np {{ type nat hook prerouting priority -100 ; }}",
                        "add rule {f} {t} np meta l4proto tcp dnat to {d}")),
    ("masquerade fully-random (nft_masq)",
     ("add chain {f} {t} pp {{ type nat hook postrouting priority 100 ; }}",
      "add rule {f} {t} pp masquerade fully-random")),
    ("reject (nft_reject)", ("add chain {f} {t} fi {{ type filter hook input priority -110 ; }}",
                             "add rule {f} {t} fi reject")),
    ("element and chain comments", ("add chain {f} {t} k {{ comment \"x\" ; }}",)),
)


def _probe_text(family: str, lines: tuple[str, ...]) -> str:
    v6 = family == "ip6"
    fill = dict(f=family, t=_PROBE_TABLE, a="ipv6_addr" if v6 else "ipv4_addr", x=family,
                d="[fd00::1]:80" if v6 else "10.0.0.1:80")
    out = [f"add table {family} {_PROBE_TABLE}"]
    for line in lines:
        text = line.format(**fill)
        if text not in out:
            out.append(text)
    return "\n".join(out) + "\n"


def _first_error(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    errors = [l for l in lines if "Error" in l]
    return (errors[0] if errors else (lines[0] if lines else "nft failed")).strip()[:300]


def _names_in(listing: str, kind: str) -> set[str]:
    """Names of ``kind`` objects inside ``table <family> kube-proxy { ... }`` of a listing."""
    names, inside = set(), False
    for raw in listing.splitlines():
        line = raw.strip()
        if line.startswith("table "):
            inside = line.split()[2:3] == [TABLE]
        elif inside and line.startswith(f"{kind} ") and line.endswith("{"):
            names.add(line[len(kind) + 1:-1].strip())
    return names


def _libnftables():
    """Debian's python3-nftables binding (libnftables), or None."""
    try:
        import nftables  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        lib = nftables.Nftables()
    except Exception as exc:           # the library itself missing
        log.info("libnftables not usable (%s): using the nft binary", exc)
        return None
    lib.set_echo_output(False)
    return lib
