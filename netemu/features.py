"""What this kernel can do, and which netemu modes and link options need the lab VM.

Why: several kernels netemu runs on (CI hosts, containers, cloud VMs with trimmed kernels) lack
ip_vs, openvswitch, sch_netem or dummy. Without them things fail obscurely or, worse, silently:
Mininet's TCLink prints "5ms delay" and applies none when sch_netem is missing. So netemu asks
the kernel first and says which mode needs what, and where to run it instead (docs/labvm.md).

Evidence, weakest to strongest, combined by the pure ``judge``:
- the kernel's build config (/proc/config.gz or /boot/config-RELEASE): built in, module, not set;
- /sys/module/NAME (loaded) and ``modprobe -n`` (a module file exists for this kernel);
- a probe (root only): create a throwaway object of that kind inside a scratch network
  namespace, or look the generic-netlink family up. What the kernel does wins over what
  files say (a module may be configured but not installed, or built in without /sys/module).

Detection is the effectful edge (``detect``); the decisions (``judge``, ``wants_for``,
``problems``) are pure functions of their inputs, unit-tested with made-up kernels.
"""

from __future__ import annotations

import errno
import functools
import gzip
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

from netemu.agent.proxy import modes as proxy_modes

LABVM_HINT = "run in the lab VM (docs/labvm.md)"


@dataclass(frozen=True)
class Feature:
    """A kernel capability: its module name, its Kconfig symbol, and what it is for."""

    name: str
    config: str
    purpose: str


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("ip_vs", "CONFIG_IP_VS", "IPVS virtual servers (kube-proxy ipvs mode)"),
    Feature("ip_vs_rr", "CONFIG_IP_VS_RR", "IPVS round-robin scheduler (ipvs mode default)"),
    Feature("ip_vs_wrr", "CONFIG_IP_VS_WRR", "IPVS weighted round-robin scheduler"),
    Feature("ip_vs_sh", "CONFIG_IP_VS_SH", "IPVS source-hashing scheduler"),
    Feature("nf_conntrack", "CONFIG_NF_CONNTRACK", "connection tracking (every proxy mode)"),
    Feature("nf_tables", "CONFIG_NF_TABLES", "nftables (nftables mode, iptables-nft)"),
    Feature("ip_tables", "CONFIG_IP_NF_IPTABLES", "legacy iptables tables (iptables-legacy)"),
    Feature("ip_set", "CONFIG_IP_SET", "ipsets (ipvs mode's KUBE-* sets)"),
    Feature("br_netfilter", "CONFIG_BRIDGE_NETFILTER", "bridged pod traffic through netfilter"),
    Feature("veth", "CONFIG_VETH", "veth pairs (pods, Mininet links)"),
    Feature("dummy", "CONFIG_DUMMY", "dummy interfaces (ipvs mode's kube-ipvs0)"),
    Feature("openvswitch", "CONFIG_OPENVSWITCH", "Open vSwitch datapath (Mininet's default switch)"),
    Feature("sch_netem", "CONFIG_NET_SCH_NETEM", "netem qdisc (TCLink delay, jitter, loss)"),
    Feature("sch_htb", "CONFIG_NET_SCH_HTB", "htb qdisc (TCLink bandwidth)"),
)}


@dataclass(frozen=True)
class Verdict:
    """Whether a feature is usable: True, False, or None (could not tell), and why we think so."""

    name: str
    available: bool | None
    evidence: str


# ---- pure: parsing and judging ----

def parse_kernel_config(text: str) -> dict[str, str]:
    """Kconfig text -> {symbol: 'y' | 'm' | 'n'}; "# CONFIG_X is not set" becomes 'n'."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value.strip('"')
    return config


def iptables_backend(version_output: str) -> str | None:
    """'nf_tables' or 'legacy' from ``iptables --version`` ("iptables v1.8.9 (nf_tables)")."""
    for backend in ("nf_tables", "legacy"):
        if f"({backend})" in version_output:
            return backend
    return None


def judge(name: str, *, config: Mapping[str, str] | None, loaded: bool, loadable: bool,
          probe: tuple[bool, str] | None) -> Verdict:
    """Combine the evidence for one feature; ``config`` None means the kernel config is unknown.

    A probe (what the kernel did) beats files; files beat nothing; with nothing, say "unknown"
    rather than guess, so a caller can warn instead of refusing.
    """
    if probe is not None:
        ok, detail = probe
        return Verdict(name, ok, f"probe: {detail}")
    if loaded:
        return Verdict(name, True, "loaded (/sys/module)")
    symbol = FEATURES[name].config
    value = None if config is None else config.get(symbol, "n")
    if value == "y":
        return Verdict(name, True, f"built in ({symbol}=y)")
    if value == "m":
        if loadable:
            return Verdict(name, True, f"loadable module ({symbol}=m)")
        return Verdict(name, False, f"{symbol}=m but no module installed for this kernel")
    if value is not None:
        return Verdict(name, False, f"{symbol} is not set in this kernel")
    if loadable:
        return Verdict(name, True, "loadable module (modprobe -n)")
    return Verdict(name, None, "unknown: no kernel config, not loaded, no module file (root can probe)")


@dataclass(frozen=True)
class Need:
    """What a netemu mode or link option needs, and what goes wrong without it."""

    what: str
    features: tuple[str, ...]
    without: str


_FIXED_NEEDS: dict[str, Need] = {
    "switch:ovs": Need("Mininet's default OVS switch", ("openvswitch",), "Mininet cannot start the switch"),
    "link:netem": Need("TCLink delay/jitter/loss", ("sch_netem",),
                       "Mininet's TCLink would print '5ms delay' and apply none"),
    "link:bw": Need("TCLink bandwidth", ("sch_htb",), "links would run unshaped"),
    "pods": Need("pods on a node bridge", ("veth", "br_netfilter"),
                 "same-node and hairpin Service traffic break"),
}


class _Needs(Mapping[str, Need]):
    """``proxy-mode:NAME`` for every mode the proxy-mode registry knows (its kernel needs are
    written there, next to the mode), then the switch, link and pod needs."""

    def _all(self) -> dict[str, Need]:
        modes = {f"proxy-mode:{m.name}": Need(m.title, m.kernel, m.without) for m in proxy_modes.known()}
        return {**modes, **_FIXED_NEEDS}

    def __getitem__(self, want: str) -> Need:
        return self._all()[want]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


NEEDS: Mapping[str, Need] = _Needs()
SWITCHES = ("ovs", "linuxbridge", "user")
NETEM_PARAMS = ("delay", "jitter", "loss", "max_queue_size")


def wants_for(*, proxy_mode: str | None = None, switch: str | None = None,
              link: Mapping[str, object] | None = None) -> list[str]:
    """The NEEDS keys for a user's choices (a TCLink's params as Mininet takes them)."""
    wants: list[str] = []
    if proxy_mode is not None:
        wants.append(f"proxy-mode:{proxy_modes.get(proxy_mode).name}")   # ValueError if unknown
    if switch is not None:
        if switch not in SWITCHES:
            raise ValueError(f"unknown switch {switch!r} (one of {', '.join(SWITCHES)})")
        if switch == "ovs":
            wants.append("switch:ovs")
    link = link or {}
    if any(link.get(p) not in (None, 0, "0", "") for p in NETEM_PARAMS):
        wants.append("link:netem")
    if link.get("bw") not in (None, 0, "0", ""):
        wants.append("link:bw")
    return wants


@dataclass(frozen=True)
class Problem:
    """One unmet need: ``fatal`` when the kernel lacks the feature, else only unverified."""

    want: str
    feature: str
    fatal: bool
    message: str


def problems(verdicts: Mapping[str, Verdict], wants: Iterable[str]) -> list[Problem]:
    """What stands between these wants and this kernel, one message per missing feature."""
    found: list[Problem] = []
    for want in wants:
        need = NEEDS[want]
        for feature in need.features:
            verdict = verdicts.get(feature) or Verdict(feature, None, "not detected")
            if verdict.available is False:
                found.append(Problem(want, feature, True,
                                     f"{need.what} needs {feature}: not in this kernel "
                                     f"({verdict.evidence}); without it {need.without}: {LABVM_HINT}"))
            elif verdict.available is None:
                found.append(Problem(want, feature, False,
                                     f"{need.what} needs {feature}: could not tell whether this "
                                     f"kernel has it ({verdict.evidence})"))
    return found


class FeatureMissing(RuntimeError):
    """Raised by ``require`` with every fatal problem's message, one a line."""


def require_for(*, proxy_mode: str | None = None, switch: str | None = None,
                link: Mapping[str, object] | None = None) -> list[Problem]:
    """The one call for code about to use a mode, switch or link option (``netemu up``, the
    emulator's TCLinks): raises FeatureMissing, else returns warnings. Detection runs once per
    process (``detected``), so calling this per link costs nothing."""
    return require(wants_for(proxy_mode=proxy_mode, switch=switch, link=link), detected())


def require(wants: Iterable[str], verdicts: Mapping[str, Verdict] | None = None) -> list[Problem]:
    """Raise FeatureMissing if a want cannot work here; return the unverified (warning) problems."""
    found = problems(detect() if verdicts is None else verdicts, wants)
    fatal = [p.message for p in found if p.fatal]
    if fatal:
        raise FeatureMissing("\n".join(fatal))
    return found


# ---- effects: asking this machine ----

Runner = Callable[[list[str]], tuple[int, str]]


def run(argv: list[str]) -> tuple[int, str]:
    """Run argv (never a shell string); (exit code, stdout+stderr); 127 if the tool is missing."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    return done.returncode, (done.stdout + done.stderr).strip()


def read_kernel_config(release: str | None = None) -> dict[str, str] | None:
    release = release or platform.release()
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return parse_kernel_config(f.read())
    except OSError:
        pass
    try:
        with open(f"/boot/config-{release}") as f:
            return parse_kernel_config(f.read())
    except OSError:
        return None


def genl_family_exists(family: str) -> tuple[bool, str] | None:
    """Look a generic-netlink family up (the kernel autoloads its module, as for ipvsadm).

    Only ENOENT means "not in this kernel"; any other failure is no evidence (None).
    """
    from pyroute2.netlink import ctrlmsg
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket

    sock = GenericNetlinkSocket()
    try:
        sock.bind(family, ctrlmsg)
        return True, f"generic netlink family {family} registered"
    except NetlinkError as exc:
        if exc.code == errno.ENOENT:
            return False, f"no generic netlink family {family} in this kernel"
        return None
    finally:
        sock.close()


def _netns_probes(ns: str, runner: Runner) -> dict[str, tuple[bool, str]]:
    """Create throwaway objects inside the scratch namespace ``ns``; feature -> (ok, detail)."""
    attempts = {
        "dummy": [["ip", "-n", ns, "link", "add", "nfprobe0", "type", "dummy"]],
        "veth": [["ip", "-n", ns, "link", "add", "nfprobe1", "type", "veth", "peer", "name", "nfprobe2"]],
        "sch_netem": [["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                      ["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"]],
        "sch_htb": [["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"],
                    ["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"]],
        "nf_tables": [["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "nfprobe"]],
        "ip_tables": [["ip", "netns", "exec", ns, "iptables-legacy", "-t", "filter", "-S"]],
    }
    results: dict[str, tuple[bool, str]] = {}
    for feature, steps in attempts.items():
        code, out = runner(steps[0])
        if code == 127:  # the tool is missing: no evidence about the kernel
            continue
        action = " ".join(steps[0][steps[0].index(ns) + 1:])
        results[feature] = (code == 0, f"{action} in a scratch netns: " + ("ok" if code == 0 else out))
        for step in steps[1:]:
            runner(step)
    return results


def probe_kernel(runner: Runner = run) -> dict[str, tuple[bool, str]]:
    """Root only: probe in a scratch netns named for our pid, always deleted afterwards."""
    results = {}
    for feature, family in (("ip_vs", "IPVS"), ("openvswitch", "ovs_datapath")):
        found = genl_family_exists(family)
        if found is not None:
            results[feature] = found
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        results["br_netfilter"] = (True, "/proc/sys/net/bridge present")
    ns = f"nfeat{os.getpid()}"
    code, out = runner(["ip", "netns", "add", ns])
    if code != 0:
        return results
    try:
        results.update(_netns_probes(ns, runner))
    finally:
        runner(["ip", "netns", "del", ns])
    return results


def detect(runner: Runner = run, probe: bool | None = None) -> dict[str, Verdict]:
    """Every feature's verdict on this machine; probes run when root (or when ``probe`` says)."""
    config = read_kernel_config()
    probes = probe_kernel(runner) if (os.geteuid() == 0 if probe is None else probe) else {}
    verdicts = {}
    for name in FEATURES:
        loaded = os.path.isdir(f"/sys/module/{name}")
        loadable = runner(["modprobe", "-n", "-q", name])[0] == 0
        verdicts[name] = judge(name, config=config, loaded=loaded, loadable=loadable,
                               probe=probes.get(name))
    return verdicts


@functools.lru_cache(maxsize=1)
def detected() -> dict[str, Verdict]:
    """``detect()`` once per process: the kernel does not change under us."""
    return detect()


def detect_tools(runner: Runner = run) -> dict[str, str | None]:
    """User-space tools netemu drives: their path (None if missing), and the iptables backend."""
    tools = {t: shutil.which(t) for t in ("ip", "tc", "iptables", "iptables-legacy", "nft", "ipset",
                                          "conntrack", "ipvsadm", "ovs-vsctl", "ovs-vswitchd", "mn")}
    tools["iptables backend"] = iptables_backend(runner(["iptables", "--version"])[1]) if tools["iptables"] else None
    return tools
