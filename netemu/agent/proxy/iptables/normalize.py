"""Restore text in the forms people diff: sorted like upstream's tests, and as iptables-save
prints it back; and the comparison of our rules with a real node's dump. Reading the text is
../xtables/dump.py's (the one parser); this module only reorders and respells what it read.

Upstream writes Services in Go-map (random) order, so its tests compare dumps after
``sortIPTablesRules`` (pkg/proxy/iptables/proxier_test.go, kubernetes v1.32): tables by name;
chains KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* alphabetically, then the rest; rules
grouped under their chain; KUBE-NODEPORTS and KUBE-SERVICES rules stably ordered by the
Service named in their comment, the nat "must be the last rule" jump kept last.
``sort_like_upstream`` does the same, so upstream's expected dumps compare to ours literally.
"""

from __future__ import annotations

from netemu.agent.proxy.xtables.dump import Dump, parse
from netemu.agent.proxy.xtables.rule import Rule, tokenize

_FIRST_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES")


def _chain_key(name: str) -> tuple[int, str]:
    if name in _FIRST_CHAINS:
        return (_FIRST_CHAINS.index(name), "")
    return (2, name) if name.startswith("KUBE-") else (3, name)


def _service_key(rule: Rule) -> str:
    comment = rule.comment or ""
    for i, ch in enumerate(comment):
        if ch in " :":
            return comment[:i]
    return comment


def sort_like_upstream(text: str) -> str:
    """The text normalised as upstream's sortIPTablesRules() does, printed as its
    IPTablesDump.String(): chain lines, each chain's rules, then the -X lines. DumpError for
    text that is not restore/save text."""
    return _upstream_text(parse(text, strict=True))


def _upstream_text(dump: Dump) -> str:
    out: list[str] = []
    for t in sorted(dump.tables.values(), key=lambda t: t.name):
        names = sorted([*t.chains, *(c for c in t.deleted if c not in t.chains)], key=_chain_key)
        out.append(f"*{t.name}")
        out.extend(f":{name} - [0:0]" for name in names)
        for name in names:
            rules = t.chains[name].rules if name in t.chains else []
            if name in _FIRST_CHAINS:
                last = [r for r in rules if "must be the last rule" in (r.comment or "")] if t.name == "nat" else []
                rules = sorted((r for r in rules if r not in last), key=_service_key)
                rules += last if name == "KUBE-SERVICES" else []
            out.extend(r.raw for r in rules)
        out.extend(f"-X {name}" for name in names if name in t.deleted and name not in t.chains)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- save form
#
# iptables-save does not print a rule the way it was given: it prints the kernel's copy in
# its own canonical order. ``to_save_form`` rewrites one of our rules that way (checked against
# iptables 1.8.9, nft and legacy backends), so our output can be diffed against
# ``iptables-save`` of a real node, line by line.

_GENERIC = ("-s", "-d", "-i", "-o", "-p")
_RECENT_CMDS = ("--set", "--rcheck", "--update", "--remove")


def _quote(word: str) -> str:
    return '"' + word.replace('"', '\\"') + '"'


def _addr(value: str) -> str:
    if "/" in value:
        return value
    return value + ("/128" if ":" in value else "/32")


def _split_matches(words: list[str]) -> tuple[dict[str, list[str]], list[list[str]], list[str]]:
    """(generic options, [-m blocks], target words) of a tokenised rule body."""
    generic: dict[str, list[str]] = {}
    matches: list[list[str]] = []
    target: list[str] = []
    i, neg = 0, False
    while i < len(words):
        w = words[i]
        if w == "!":
            neg, i = True, i + 1
            continue
        if w in _GENERIC:
            value = _addr(words[i + 1]) if w in ("-s", "-d") else words[i + 1]
            generic[w] = (["!"] if neg else []) + [w, value]
            i += 2
        elif w == "-m":
            matches.append(["-m", words[i + 1]])
            i += 2
        elif w in ("-j", "-g"):
            target = words[i:]
            break
        else:
            if neg:
                (matches[-1] if matches else target).append("!")
            (matches[-1] if matches else target).append(w)
            i += 1
        neg = False
    return generic, matches, target


def _match_save_form(block: list[str], ipv6: bool = False) -> list[str]:
    name, opts = block[1], block[2:]
    if name == "comment":
        return ["-m", "comment", "--comment", _quote(opts[opts.index("--comment") + 1])]
    if name == "recent":
        cmd = [w for w in opts if w in _RECENT_CMDS]
        rest, j = [], 0
        while j < len(opts):
            if opts[j] in _RECENT_CMDS:
                j += 1
            elif opts[j] in ("--name", "--mask"):
                j += 2
            elif opts[j] in ("--rsource", "--rdest"):
                j += 1
            elif opts[j] in ("--seconds", "--hitcount"):
                rest += opts[j:j + 2]
                j += 2
            else:
                rest.append(opts[j])
                j += 1
        recent_name = opts[opts.index("--name") + 1] if "--name" in opts else "DEFAULT"
        full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" if ipv6 else "255.255.255.255"
        mask = opts[opts.index("--mask") + 1] if "--mask" in opts else full
        side = "--rdest" if "--rdest" in opts else "--rsource"
        return ["-m", "recent", *cmd, *rest, "--name", recent_name, "--mask", mask, side]
    if name == "statistic" and "--probability" in opts:
        k = opts.index("--probability") + 1
        p = round(float(opts[k]) * 0x80000000) / 0x80000000   # the kernel keeps 31 bits
        opts = opts[:k] + ["%.11f" % p] + opts[k + 1:]
    return ["-m", name, *opts]


def _target_save_form(target: list[str], ipv6: bool = False) -> list[str]:
    if not target:
        return []
    if target[:2] == ["-j", "MARK"] and len(target) == 4 and target[2] in ("--or-mark", "--xor-mark"):
        mark = target[3]
        return ["-j", "MARK", "--set-xmark", f"{mark}/{mark}" if target[2] == "--or-mark" else f"{mark}/0x0"]
    if target == ["-j", "REJECT"]:
        return ["-j", "REJECT", "--reject-with", "icmp6-port-unreachable" if ipv6 else "icmp-port-unreachable"]
    return target


def to_save_form(rule: str, ipv6: bool = False) -> str:
    """One ``-A`` rule of ours as ``iptables-save`` (``ip6tables-save`` with ``ipv6``) prints it
    back (see the comment above)."""
    words = tokenize(rule)
    if len(words) < 2 or words[0] != "-A":
        return rule
    generic, matches, target = _split_matches(words[2:])
    out = ["-A", words[1]]
    for opt in _GENERIC:
        out += generic.get(opt, [])
    for block in matches:
        out += _match_save_form(block, ipv6)
    return " ".join(out + _target_save_form(target, ipv6))


def save_form(text: str, ipv6: bool = False) -> str:
    """A whole restore text with every ``-A`` rule in save form (other lines unchanged)."""
    return "\n".join(to_save_form(line, ipv6) if line.startswith("-A ") else line
                     for line in text.split("\n"))


# --------------------------------------------------------------------------- compare

# Chains whose rule order between Services is arbitrary (upstream writes Services in Go-map
# order): compared as multisets. Every other chain is compared rule by rule, in order.
_UNORDERED = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL")
_IGNORED = ("KUBE-PROXY-CANARY", "KUBE-KUBELET-CANARY")


def _kube_chains(text: str, ipv6: bool) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for t in parse(text, strict=True).tables.values():
        for c in t.chains.values():
            if c.name.startswith("KUBE-") and c.name not in _IGNORED:
                out[(t.name, c.name)] = [to_save_form(r.raw, ipv6) for r in c.rules]
    return out


def compare(ours: str, theirs: str, ipv6: bool = False) -> list[str]:
    """Differences between our rules and another dump (e.g. a real node's iptables-save),
    KUBE-* chains only, both in save form; [] when they hold the same rules. DumpError for a
    text that is not restore/save text."""
    a, b = _kube_chains(ours, ipv6), _kube_chains(theirs, ipv6)
    diffs = [f"{t} {c}: only in ours" for t, c in sorted(a.keys() - b.keys())]
    diffs += [f"{t} {c}: only in theirs" for t, c in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        ra, rb = a[key], b[key]
        if key[1] in _UNORDERED:
            ra, rb = sorted(ra), sorted(rb)
        if ra == rb:
            continue
        extra = [r for r in ra if r not in rb]
        missing = [r for r in rb if r not in ra]
        if not extra and not missing:
            diffs.append(f"{key[0]} {key[1]}: same rules, different order")
        diffs += [f"{key[0]} {key[1]}: only in ours: {r}" for r in extra]
        diffs += [f"{key[0]} {key[1]}: only in theirs: {r}" for r in missing]
    return diffs
