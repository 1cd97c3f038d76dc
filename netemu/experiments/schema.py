"""The scenario file: its schema, and the parse of one run's document into a ``Scenario``.

A scenario (YAML; the full reference with examples is experiments/README.md)::

    name: fairness                   # a lowercase name; the result folder's default name
    description: one line or more
    duration: 40                     # seconds the timeline lasts
    seed: 1                          # every random choice netemu makes (--seed overrides)
    cluster:
      nodes: 2                       # workers of the default topology, or
      topology: {file: zones.py, class: TwoZoneTopo, args: [2], kwargs: {cross_bw: 100}}
      proxy_mode: iptables           # every node's kube-proxy mode
      proxy_modes: {worker2: iptables}   # per node, overriding proxy_mode
      apiserver_args: ["--node-monitor-grace-period=4s"]
      agent_args: ["--heartbeat-interval=1"]
      edge: true                     # netemu up --edge (lb_health_check: its --lb-health-check)
    manifests:                       # files (relative to the scenario) or inline objects
      - file: web.yaml
      - {apiVersion: v1, kind: Pod, metadata: {name: client}, spec: ...}
    traffic:                         # phases: netemu traffic's options, started at `start`
      - {name: load, from: client, to: svc/web:80, start: 0, rate: 50, concurrency: 8}
    timeline:                        # events (eventspec.py) at given seconds
      - {at: 10, scale: {deployment: web, replicas: 4}, wait: true}
    variants:                        # optional: runs of this scenario, each overriding fields
      - {name: with-probe, set: {manifests: [...]}}
    for_each: proxy_mode             # optional: one run per selectable proxy mode
    small:                           # overrides applied by --small (CI size)
      duration: 15
    x-anything: &anchor {...}         # x-... fields are ignored: a place for YAML anchors

Parsing here is pure: files named by ``manifests`` are read, nothing else is touched. Whether
the targets exist, the times fit and the kernel can do it is validate.py's job.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netemu.experiments import eventspec
from netemu.experiments.fields import Fields, Problems
from netemu.experiments.located import LList, LMap, Problem, ScenarioError, line_of, plain
from netemu.traffic.spec import LoadSpec, SpecError

TOP_FIELDS = ("name", "description", "duration", "seed", "cluster", "manifests", "traffic", "timeline",
              "variants", "for_each", "small")
CLUSTER_FIELDS = ("nodes", "topology", "proxy_mode", "proxy_modes", "apiserver_args", "agent_args", "edge",
                  "lb_health_check")
LOAD_FIELDS = ("proto", "requests", "connections", "duration", "rate", "concurrency", "keepalive",
               "per_connection", "payload", "path", "timeout", "arrival", "clientip_probes", "workers", "warm", "source_port")
PHASE_FIELDS = ("name", "from", "to", "via", "node", "namespace", "start", "weights", *LOAD_FIELDS)
FOR_EACH = ("proxy_mode",)
UNTIL_END_SLACK = 3600.0                 # a phase "until the end" is cancelled at the end, never runs out
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ClusterSpec:
    nodes: int | None = 2
    topology: str | None = None          # FILE:Class[,args] as netemu up --topo takes it
    topology_file: str | None = None
    proxy_mode: str = "iptables"
    proxy_modes: tuple[tuple[str, str], ...] = ()
    apiserver_args: tuple[str, ...] = ()
    agent_args: tuple[str, ...] = ()
    edge: bool = False                   # netemu up --edge: internet clients and the provider LB
    lb_health_check: str | None = None   # its --lb-health-check

    def up_argv(self) -> list[str]:
        """``netemu up`` flags for this cluster (state dir and node network added by the caller)."""
        argv = ["--topo", self.topology] if self.topology else ["--nodes", str(self.nodes)]
        argv += ["--proxy-mode", self.proxy_mode]
        argv += [f"--node-proxy-mode={n}={m}" for n, m in self.proxy_modes]
        argv += ["--edge"] if self.edge else []
        argv += [f"--lb-health-check={self.lb_health_check}"] if self.lb_health_check else []
        argv += [f"--apiserver-arg={a}" for a in self.apiserver_args]
        return argv + [f"--agent-arg={a}" for a in self.agent_args]


@dataclass(frozen=True)
class Manifest:
    obj: dict
    where: str                           # "web.yaml document 2" or "scenario.yaml:14"
    line: int | None = None              # the manifests entry it came from

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "default")


@dataclass(frozen=True)
class Phase:
    name: str
    source: str
    target: str
    start: float
    spec: LoadSpec
    via: str | None = None
    node: str | None = None
    namespace: str = "default"
    weights: dict | None = None
    line: int | None = None
    until_end: bool = False              # no stop condition given: runs until the timeline ends


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    params: dict
    wait: bool = False
    line: int | None = None

    def label(self) -> str:
        p = self.params
        what = {"scale": lambda: f"scale {p['deployment']} to {p['replicas']}",
                "delete_pod": lambda: f"delete pod {p['name'] or p['selector']}"
                                      + (f" x{p['count']}" if not p['name'] and p['count'] > 1 else ""),
                "rollout": lambda: f"rollout {p['deployment']}",
                "link": lambda: f"link {p['node']} " + (p['state'] or ("reset" if p['reset'] else "shaped")),
                "agent": lambda: f"agent {p['node']} {p['action']}",
                "drain": lambda: f"drain {p['node']}", "uncordon": lambda: f"uncordon {p['node']}",
                "service": lambda: f"service {p['name']} " + ", ".join(
                    f"{k}={v}" for k, v in p.items()
                    if k not in ("name", "namespace") and not k.startswith("_") and v is not None),
                "dummy_services": lambda: f"+{p['count']} Services"}.get(self.kind, lambda: self.kind)
        return what()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    seed: int
    cluster: ClusterSpec
    manifests: tuple[Manifest, ...]
    phases: tuple[Phase, ...]
    events: tuple[Event, ...]
    file: str
    variant: str = ""
    document: dict = field(default_factory=dict)     # the merged document this run was parsed from
    cluster_line: int | None = None

    @property
    def run_name(self) -> str:
        return self.variant or self.name


# ---- overrides (variants, small) ------------------------------------------------------------

def merge(base: Any, over: Any) -> Any:
    """Deep merge of located documents: mappings merge key by key, anything else is replaced
    (a list given in an override replaces the list). Lines stay those of where each value was
    written."""
    if isinstance(base, LMap) and isinstance(over, dict):
        out = LMap(base)
        out.line, out.file = base.line, base.file
        out.lines, out.key_lines = dict(base.lines), dict(base.key_lines)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else value
            if isinstance(over, LMap):
                out.lines[key] = over.lines.get(key, out.line)
                out.key_lines[key] = over.key_lines.get(key, out.line)
        return out
    return copy.copy(over)


# ---- parsing --------------------------------------------------------------------------------

def parse(doc: Any, file: str, *, variant: str = "", seed: int | None = None) -> Scenario:
    """One run's document (already merged with its overrides) -> Scenario; ScenarioError with
    every problem found otherwise."""
    problems = Problems(file)
    top = Fields(doc, "scenario", problems)
    top.only(TOP_FIELDS, extensions=True)
    name = top.str("name", required=True) or "scenario"
    if not _NAME.match(name):
        top.bad("name", f"{name!r}: lowercase letters, digits and '-' (it names the result folder)")
    duration = top.duration("duration", required=True, positive=True) or 0.0
    chosen_seed = seed if seed is not None else top.int("seed", 0, minimum=0)
    cluster = _cluster(top, file)
    manifests = _manifests(top, Path(file).parent, problems)
    phases = _phases(top, problems, duration)
    events = _events(top, problems)
    scenario = Scenario(name, top.str("description", "") or "", duration, chosen_seed or 0, cluster,
                        tuple(manifests), tuple(phases), tuple(sorted(events, key=lambda e: e.at)), file, variant,
                        plain(doc), top.here("cluster"))
    if problems.items:
        error = ScenarioError(problems.items)
        error.partial = scenario          # what could be read, so validation can say more at once
        raise error
    return scenario


def _cluster(top: Fields, file: str) -> ClusterSpec:
    f = top.mapping("cluster") or Fields(LMap(), "cluster", top.problems, top.line)
    f.only(CLUSTER_FIELDS)
    if f.has("nodes") and f.has("topology"):
        f.bad(None, "give nodes or topology, not both (a topology's size is one of its args)")
    nodes = f.int("nodes", 2, minimum=1, maximum=500)
    topology = topo_file = None
    t = f.mapping("topology")
    if t is not None:
        t.only(("file", "class", "args", "kwargs"))
        topo_file = t.str("file", required=True)
        cls = t.str("class", required=True)
        args = t.raw("args", [])
        kwargs = t.raw("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            t.bad(None, "args must be a list and kwargs a mapping")
        elif topo_file and cls:
            parts = [str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
            if any("," in p for p in parts):
                t.bad(None, "topology args cannot contain ','")
            if topo_file and not Path(topo_file).is_absolute():
                beside = Path(file).parent / topo_file
                topo_file = str(beside) if beside.is_file() else topo_file
            topology = ":".join([topo_file, ",".join([cls, *parts])])
    modes: list[tuple[str, str]] = []
    per = f.mapping("proxy_modes")
    if per is not None:
        for node, mode in per.data.items():
            if not isinstance(mode, str):
                per.bad(str(node), f"must be a proxy mode name, not {mode!r}")
            else:
                modes.append((str(node), mode))
    edge = f.bool("edge")
    health = f.str("lb_health_check")
    if health is not None:
        from netemu.emulator.cloud.health import HealthSettings
        try:
            HealthSettings.parse(health)
        except ValueError as exc:
            f.bad("lb_health_check", str(exc))
        if not edge:
            f.bad("lb_health_check", "goes with edge: true (it is the provider load balancer's)")
    return ClusterSpec(None if topology else nodes, topology, topo_file, f.str("proxy_mode", "iptables") or "iptables",
                       tuple(modes), tuple(f.strings("apiserver_args")), tuple(f.strings("agent_args")),
                       edge, health)


def _manifests(top: Fields, base: Path, problems: Problems) -> list[Manifest]:
    from netemu.api.manifests import ManifestError, load

    items = top.raw("manifests", [])
    if not isinstance(items, list):
        top.bad("manifests", "must be a list of {file: PATH} or objects")
        return []
    out = []
    for i, item in enumerate(items):
        line = line_of(items, i)
        if isinstance(item, dict) and set(item) == {"file"}:
            path = base / str(item["file"])
            try:
                loaded = load([path])
            except ManifestError as exc:
                problems.add(line, f"manifests[{i}]: {exc}")
                continue
            for p in loaded.problems:
                problems.add(line, f"manifests[{i}]: {p}")
            for where, obj in loaded.objects:
                out.append(_manifest(obj, where.replace(str(base) + "/", ""), line, problems, i))
        elif isinstance(item, dict):
            out.append(_manifest(plain(item), f"{top.problems.file}:{line}", line, problems, i))
        else:
            problems.add(line, f"manifests[{i}]: must be {{file: PATH}} or a Kubernetes object, not {item!r}")
    return [m for m in out if m is not None]


def _manifest(obj: dict, where: str, line: int | None, problems: Problems, i: int) -> Manifest | None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if not obj.get("apiVersion") or not obj.get("kind") or not meta.get("name"):
        problems.add(line, f"manifests[{i}] ({where}): an object needs apiVersion, kind and metadata.name")
        return None
    return Manifest(obj, where, line)


def _phases(top: Fields, problems: Problems, duration: float) -> list[Phase]:
    items = top.raw("traffic", [])
    if not isinstance(items, list):
        top.bad("traffic", "must be a list of phases")
        return []
    out, names = [], set()
    for i, item in enumerate(items):
        f = Fields(item, f"traffic[{i}]", problems, line_of(items, i))
        f.only(PHASE_FIELDS)
        name = f.str("name", f"phase{i + 1}") or f"phase{i + 1}"
        if name in names:
            f.bad("name", f"{name!r} is used by another phase")
        names.add(name)
        start = f.duration("start", 0.0) or 0.0
        load = {k: f.data[k] for k in LOAD_FIELDS if f.has(k)}
        if "duration" in load:
            load["duration"] = f.duration("duration", positive=True)
        until_end = not any(k in load for k in ("requests", "connections", "duration"))
        if until_end:            # until the timeline's end, however far waits move it (cancelled then)
            load["duration"] = max(duration - start, 0.001) + UNTIL_END_SLACK
        load.setdefault("seed", 0)
        load.setdefault("clientip_probes", 0)
        try:
            spec = LoadSpec(**plain(load)).check()
        except (SpecError, TypeError) as exc:
            f.bad(None, _field_names(str(exc)))
            continue
        weights = f.raw("weights")
        if weights is not None and (not isinstance(weights, dict) or not all(
                isinstance(v, (int, float)) and v >= 0 for v in weights.values())):
            f.bad("weights", "must map endpoint names to weights >= 0")
            weights = None
        source, target = f.str("from", required=True), f.str("to", required=True)
        if source and target:
            out.append(Phase(name, source, target, start, spec, f.str("via"), f.str("node"),
                             f.str("namespace", "default") or "default", plain(weights), f.line, until_end))
    return out


def _field_names(message: str) -> str:
    """The traffic tool's messages name CLI flags (--per-connection); a scenario names fields."""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: m[1].replace("-", "_"), message)


def _events(top: Fields, problems: Problems) -> list[Event]:
    items = top.raw("timeline", [])
    if not isinstance(items, list):
        top.bad("timeline", "must be a list of events ({at: SECONDS, KIND: {...}})")
        return []
    out = []
    for i, item in enumerate(items):
        f = Fields(item, f"timeline[{i}]", problems, line_of(items, i))
        at = f.duration("at", required=True)
        kinds = [k for k in f.data if k not in ("at", "wait", "note")]
        if len(kinds) != 1:
            f.bad(None, f"one event kind per entry ({', '.join(eventspec.KINDS)}), got "
                        f"{', '.join(map(str, kinds)) or 'none'}")
            continue
        kind = kinds[0]
        if kind not in eventspec.KINDS:
            close = [k for k in eventspec.KINDS if k[:3] == str(kind)[:3]]
            problems.add(f.data.key_lines.get(kind, f.line) if isinstance(f.data, LMap) else f.line,
                         f"timeline[{i}]: unknown event {kind!r}" + (f" (did you mean {close[0]}?)" if close else "")
                         + f"; known: {', '.join(eventspec.KINDS)}")
            continue
        parsed = eventspec.KINDS[kind](Fields(f.data[kind], f"timeline[{i}].{kind}", problems, f.here(kind)))
        wait = f.bool("wait")
        if wait and not parsed.waitable:
            f.bad("wait", f"a {kind} event has nothing to wait for")
        if at is not None:
            out.append(Event(at, kind, {**parsed.params, "_refs": parsed.refs, "_needs": parsed.needs}, wait, f.line))
    return out


def split_variants(doc: Any, file: str, small: bool) -> list[tuple[str, Any]]:
    """The document of each run: ``small`` merged first (with --small), then one document per
    variant (its ``set`` merged); ``for_each`` is expanded by validate.py, which knows the modes."""
    if not isinstance(doc, dict):
        raise ScenarioError([Problem(file, line_of(doc), "a scenario is a mapping (name:, duration:, ...)")])
    if small and isinstance(doc.get("small"), dict):
        doc = merge(doc, doc["small"])
    variants = doc.get("variants")
    base = LMap({k: v for k, v in doc.items() if k not in ("variants", "small", "for_each")})
    base.line, base.file = doc.line if isinstance(doc, LMap) else None, file
    if isinstance(doc, LMap):
        base.lines = {k: v for k, v in doc.lines.items() if k in base}
        base.key_lines = {k: v for k, v in doc.key_lines.items() if k in base}
    if variants is None:
        return [("", base)]
    if not isinstance(variants, list) or not variants:
        raise ScenarioError([Problem(file, line_of(doc, "variants"), "variants: must be a non-empty list of "
                                                                     "{name: NAME, set: {...}}")])
    out, problems = [], Problems(file)
    for i, v in enumerate(variants):
        f = Fields(v, f"variants[{i}]", problems, line_of(variants, i))
        f.only(("name", "set"))
        name = f.str("name", required=True)
        if name and not _NAME.match(name):
            f.bad("name", f"{name!r}: lowercase letters, digits and '-' (it names a result folder)")
        if name in [n for n, _ in out]:
            f.bad("name", f"{name!r} is used by another variant")
        over = f.raw("set", LMap())
        if not isinstance(over, dict):
            f.bad("set", "must be a mapping of the fields to override")
            continue
        bad = [k for k in over if k not in TOP_FIELDS or k in ("variants", "small", "for_each", "name")]
        for k in bad:
            f.bad("set", f"cannot override {k!r}")
        if name:
            out.append((name, merge(base, over)))
    if problems.items:
        raise ScenarioError(problems.items)
    return out
