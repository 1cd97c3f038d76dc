"""The one registry of kube-proxy modes: for each mode, how to make its proxier, render, trace
and clean up its rules, which flags it takes, and what it needs from the kernel.

Why one registry: the list of modes used to be written in several places (features, each CLI
command, the agent), each free to drift. Every caller now reads ``MODES`` through the functions
below: ``netemu agent``/``up``/``proxy run`` take ``--proxy-mode`` from ``selectable()``, ``netemu
proxy render`` and ``trace`` dispatch to a mode's renderer and tracer, ``netemu proxy cleanup``
runs every mode's cleanup, and ``netemu features``/``doctor`` (netemu.features) learn each
mode's kernel needs here. Nothing outside this module names a mode.

Lean on purpose: a mode's package is named by module path and imported on first use of one of
its hooks, so ``netemu agent`` loads only the mode it runs and ``netemu doctor`` loads none.

Adding a mode (``nftables``, ``ipvs``, ...):
1. a package ``netemu/agent/proxy/MODE/`` shaped like ``iptables/``: a pure builder or planner
   (model maps in, the kernel's input out), the applier (the only part touching the kernel, through
   a ``commands.Exec``), cleanup, tracer, and a ``proxier.Proxier`` subclass;
2. one ``Mode(...)`` entry in ``MODES`` naming its hooks as ``"module:attribute"`` (and, for a
   test or a plug-in, ``register(Mode(...))`` does the same at run time).
A mode without a ``proxier`` hook is known (its kernel needs are checked, its leftovers cleaned)
but not selectable.

The hooks' contracts (``**options``: the mode's Options for that hook, by argparse dest):
- ``proxier(node: NodeInfo, config: ProxyConfig, *, exec_: Exec, **options) -> Proxier``
- ``renderer(services, slices, node, config, *, problems: list[str], **options) -> Rendering``
  (Services and EndpointSlices as dicts; bad objects skipped with a reason in ``problems``)
- ``tracer(dump: str | None, packet: tracing.Packet, *, exec_: Exec, node_ips, origin, ipsets,
  **options) -> tracing.TraceResult`` (``dump`` None: read the live kernel through ``exec_``;
  tracing.TraceError for unusable input)
- ``kernel_tracer(packet: tracing.Packet, *, netns: str, send: Callable[[], None], origin: str,
  **options) -> kernel_trace.KernelPath``: follow one real packet (``send()`` sends it) through
  the kernel of the node namespace ``netns`` with the kernel's own tracing, and say which chains
  it went through; ``netemu trace --kernel`` compares that with the ``tracer``'s prediction
  (kernel_trace.compare). tracing.TraceError when this kernel or backend cannot trace
- ``cleanup(**options) -> step``; ``step(leftovers.Leftovers)`` removes what the mode left in a
  kernel, reporting into ``Leftovers.report`` (ValueError from ``cleanup`` for a bad option)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:                 # the agent process imports this module: no argparse for it
    import argparse

DEFAULT = "iptables"          # the mode used when none is chosen (upstream's default on Linux)
NO_PROXY = "none"             # not a mode: `netemu agent`/`up` without kube-proxy (kubelets alone)
HOOKS = ("proxier", "renderer", "tracer", "kernel_tracer", "cleanup")


class ModeError(ValueError):
    """An unknown mode, a mode that cannot do what was asked, or a flag of another mode."""


class ModeUnavailable(ModeError):
    """A proxier hook found, before changing anything, that this kernel or host cannot run the
    mode (its message is one line: what is missing and where to run instead)."""


class Option(NamedTuple):
    """A flag of one mode for some of its hooks (``uses``: HOOKS names), offered by every command
    that calls them ("proxier": ``netemu agent``, ``up`` and ``proxy run``; "renderer": ``proxy
    render``; "tracer": ``trace``; "cleanup": ``proxy cleanup``); the hook receives it by argparse
    dest. Two modes may declare the same flag: it is offered once, its choices joined."""

    flag: str
    help: str
    uses: tuple[str, ...]
    choices: tuple[str, ...] | None = None
    default: Any = None
    switch: bool = False          # a store_true flag
    repeat: bool = False          # may be given several times (its value is then a list)
    metavar: str | None = None

    @property
    def key(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


class Rendering(NamedTuple):
    """What a renderer hook returns to ``netemu proxy render``: the text printed, a one-line
    summary for stderr, and how to compare with a real node's dump (None: cannot)."""

    text: str
    summary: str
    compare: Callable[[str], list[str]] | None = None


class Mode(NamedTuple):
    """One proxy mode. Hooks are ``"module:attribute"`` paths (or the objects themselves).
    NamedTuples, not dataclasses, here: this module is on `netemu agent`'s start-up path."""

    name: str
    title: str                       # "iptables proxy mode": how doctor and errors call it
    kernel: tuple[str, ...]          # netemu.features.FEATURES names it cannot work without
    without: str                     # what goes wrong without them
    proxier: Any = None
    renderer: Any = None
    tracer: Any = None
    cleanup: Any = None
    kernel_tracer: Any = None
    options: tuple[Option, ...] = ()
    # upstream's isIPTablesBased (cmd/kube-proxy/app/server_linux.go, v1.32): the mode keeps its
    # rules in iptables' KUBE-* chains, so its start never cleans another such mode's leftovers
    # (those chains are its own: iptables' cleanup would take IPVS's KUBE-SERVICES with it)
    iptables_based: bool = False

    @property
    def implemented(self) -> bool:
        return self.proxier is not None

    def hook(self, name: str) -> Callable:
        """The hook ``name`` (one of HOOKS), its module imported now (the first use)."""
        target = getattr(self, name)
        if target is None:
            raise ModeError(f"proxy mode {self.name} has no {name}")
        if not isinstance(target, str):
            return target
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def options_for(self, use: str) -> tuple[Option, ...]:
        return tuple(o for o in self.options if use in o.uses)


_P = "netemu.agent.proxy"
_IPTABLES_BACKENDS = ("nft", "legacy")
_IPVS_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")  # kernel ip_vs_*

MODES: tuple[Mode, ...] = (
    Mode("iptables", "iptables proxy mode", ("nf_conntrack",), "Services do not work",
         proxier=f"{_P}.iptables.proxier:make_proxier", renderer=f"{_P}.iptables:rendering",
         tracer=f"{_P}.iptables.trace:trace", cleanup=f"{_P}.iptables.cleanup:cleanup",
         kernel_tracer=f"{_P}.iptables.ktrace:kernel_trace", options=(
             Option("--iptables-backend", "iptables binaries kube-proxy uses (auto or iptables: the "
                    "system's alternative)", ("proxier",), ("auto", "iptables", *_IPTABLES_BACKENDS), "auto"),
             Option("--upstream-order", "print sorted as upstream's proxier_test.go dumps (for diffing)",
                    ("renderer",), switch=True),
             Option("--save-form", "print rules as iptables-save prints them back (diff against a "
                    "node's iptables-save)", ("renderer",), switch=True),
             Option("--backend", "with --live: read this iptables backend (default: the one holding "
                    "KUBE- rules)", ("tracer",), _IPTABLES_BACKENDS),
             Option("--backend", "only this iptables backend (default: both, since leftovers in "
                    "either apply)", ("cleanup",), _IPTABLES_BACKENDS)), iptables_based=True),
    Mode("nftables", "nftables proxy mode", ("nf_tables", "nf_conntrack"), "the ruleset cannot be loaded",
         proxier=f"{_P}.nftables.proxier:make_proxier",
         renderer=f"{_P}.nftables:rendering", tracer=f"{_P}.nftables.trace:trace",
         kernel_tracer=f"{_P}.nftables.ktrace:kernel_trace",
         cleanup=f"{_P}.nftables.cleanup:cleanup", options=(
             Option("--nodeport-addresses", "CIDR whose node addresses accept NodePorts (default: the node's "
                    "primary IP, as upstream's nftables mode)", ("renderer", "proxier"), repeat=True, metavar="CIDR"),
             Option("--service-cidr", "Service CIDR whose unallocated ClusterIPs are dropped (a node's kube-proxy "
                    "learns the cluster's)", ("renderer",), repeat=True, metavar="CIDR"),
             Option("--nft-backend", "how transactions reach the kernel: libnftables in the process, the "
                    "nft binary, or auto (libnftables when it can)", ("proxier",), ("auto", "nft", "libnftables"),
                    "auto"),
             Option("--transaction", "print the first sync's nft transaction instead of the resulting table",
                    ("renderer",), switch=True))),
    Mode("ipvs", "IPVS proxy mode", ("ip_vs", "ip_vs_rr", "dummy", "ip_set", "nf_conntrack"),
         "kube-proxy cannot create virtual servers", proxier=f"{_P}.ipvs.proxier:make_proxier",
         renderer=f"{_P}.ipvs:rendering", tracer=f"{_P}.ipvs.trace:trace", cleanup=f"{_P}.ipvs.cleanup:cleanup",
         options=(
             Option("--ipvs-scheduler", "IPVS scheduler of every virtual server (upstream's flag; "
                    "rr: round robin, wrr: weighted, lc/wlc: least connections, sh: source hashing, "
                    "mh: maglev hashing, ...)", ("proxier", "renderer"), _IPVS_SCHEDULERS, "rr"),
             Option("--nodeport-addresses", "CIDR whose node addresses get NodePort virtual servers (default: "
                    "every node address, as upstream's IPVS mode)", ("renderer", "proxier"), repeat=True,
                    metavar="CIDR"),
             Option("--ipvs-strict-arp", "arp_ignore=1, arp_announce=2 (upstream's flag)", ("proxier",), switch=True),
             Option("--ipvs-exclude-cidrs", "CIDR whose virtual servers kube-proxy leaves alone when it cleans up",
                    ("proxier",), repeat=True, metavar="CIDR"),
             *(Option(f"--ipvs-{name}-timeout", f"IPVS {what} connection timeout, e.g. 900s (default: the "
                      "kernel's)", ("proxier",), metavar="DURATION")
               for name, what in (("tcp", "idle TCP"), ("tcpfin", "TCP FIN_WAIT"), ("udp", "UDP")))),
         iptables_based=True),
)

_registry: dict[str, Mode] = {m.name: m for m in MODES}


# ---- reading the registry ---------------------------------------------------------------

def known() -> tuple[Mode, ...]:
    """Every mode, in registry order (cleanup runs in this order: iptables before ipvs's ipsets)."""
    return tuple(_registry.values())


def names() -> tuple[str, ...]:
    return tuple(_registry)


def selectable() -> tuple[str, ...]:
    """The modes a proxier can run (``--proxy-mode`` choices)."""
    return tuple(m.name for m in _registry.values() if m.implemented)


def with_hook(hook: str) -> tuple[Mode, ...]:
    return tuple(m for m in _registry.values() if getattr(m, hook) is not None)


def get(name: str) -> Mode:
    """The mode called ``name``; ModeError naming the known ones otherwise."""
    mode = _registry.get(name)
    if mode is None:
        raise ModeError(f"unknown proxy mode {name!r} (one of {', '.join(_registry)})")
    return mode


def choose(name: str, hook: str = "proxier") -> Mode:
    """The mode ``name`` for a command that needs its ``hook``; one clear ModeError otherwise."""
    mode = _registry.get(name)
    able = [m.name for m in with_hook(hook)]
    if mode is None:
        raise ModeError(f"{name!r}: choose one of {', '.join(able)}")
    if getattr(mode, hook) is None:
        raise ModeError(f"{name}: not yet implemented ({', '.join(able)} {'is' if len(able) == 1 else 'are'})")
    return mode


# ---- changing it (tests, plug-ins) ------------------------------------------------------

def register(mode: Mode) -> Mode:
    """Add (or replace) a mode at run time; ``MODES`` is where netemu's own modes go."""
    _registry[mode.name] = mode
    return mode


def unregister(name: str) -> None:
    """Remove a mode added by ``register`` (a built-in one comes back from ``MODES``)."""
    _registry.pop(name, None)
    _registry.update({m.name: m for m in MODES if m.name == name})


# ---- the modes' flags on a command line -------------------------------------------------

def add_options(parser: argparse.ArgumentParser, use: str) -> None:
    """Every mode's flags for the hook ``use`` (one of HOOKS) on ``parser``; a flag two modes
    declare is added once (its choices joined: each mode's hook checks its own)."""
    shared: dict[str, list[tuple[str, Option]]] = {}
    for mode in _registry.values():
        for o in mode.options_for(use):
            shared.setdefault(o.flag, []).append((mode.name, o))
    for flag, owners in shared.items():
        first = owners[0][1]
        help = "; ".join(f"{name} mode: {o.help}" for name, o in owners)
        if first.switch:
            parser.add_argument(flag, action="store_true", help=help)
            continue
        if first.repeat:
            parser.add_argument(flag, action="append", default=None, metavar=first.metavar,
                                help=help + " (repeatable)")
            continue
        choices = None if any(o.choices is None for _, o in owners) else \
            tuple(dict.fromkeys(c for _, o in owners for c in o.choices))
        parser.add_argument(flag, choices=choices, default=first.default, help=help)


def options_from(args: argparse.Namespace, mode: str | None, use: str) -> dict[str, Any]:
    """``mode``'s values of its ``use`` flags (its hook's keywords); ModeError when a flag of
    another mode was set to anything but its default (``mode`` None: no mode chosen)."""
    values: dict[str, Any] = {}
    for m in _registry.values():
        for o in m.options_for(use):
            value = getattr(args, o.key, o.default)
            if m.name == mode:
                values[o.key] = value
            elif value not in (o.default, False) and not any(p.key == o.key for p in _mine(mode, use)):
                raise ModeError(f"{o.flag} is an option of proxy mode {m.name}"
                                + (f", not {mode}" if mode else ""))
    return values


def every_mode_options(args: argparse.Namespace, use: str) -> dict[str, Any]:
    """The ``use`` flags of every mode that were set (a command that runs every mode: cleanup)."""
    return {o.key: getattr(args, o.key) for m in _registry.values() for o in m.options_for(use)
            if getattr(args, o.key, None) not in (None, False)}


def option_argv(options: dict[str, Any], mode: str, use: str) -> list[str]:
    """``options`` (from ``options_from``) as flags again, for a command run for us (up -> agents)."""
    argv: list[str] = []
    for o in get(mode).options_for(use):
        value = options.get(o.key, o.default)
        if o.switch:
            argv += [o.flag] if value else []
        elif o.repeat:
            for v in value or ():
                argv += [o.flag, str(v)]
        elif value is not None:
            argv += [o.flag, str(value)]
    return argv


def _mine(mode: str | None, use: str) -> tuple[Option, ...]:
    m = _registry.get(mode) if mode else None
    return m.options_for(use) if m else ()
