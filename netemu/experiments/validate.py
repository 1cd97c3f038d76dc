"""Everything about a scenario checked before anything starts, every problem with its line.

``load_plan(path, small=, seed=, verdicts=)`` reads the file, expands ``small``, ``variants`` and
``for_each: proxy_mode``, parses each run (schema.py) and checks what parsing cannot alone:

- names: every Deployment, Service, Pod and node an event or phase names exists in the
  scenario's manifests or topology (dummy Services aside), a Service port exists;
- times: no event after the end, no phase starting or (with a duration) ending after it;
- the kernel: proxy modes are selectable and their kernel needs met; link delay/jitter/loss
  need netem, bandwidth htb/tbf ("needs netem (sch_netem): run in the lab VM" otherwise);
  ``for_each: proxy_mode`` takes every selectable mode and leaves out, with a note, those this
  kernel cannot run.

Pure but for reading the scenario's own files and, for a ``topology`` file, importing it (as
``netemu up --topo`` does): ``verdicts`` (netemu.features) comes from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from netemu.experiments import schema
from netemu.experiments.eventspec import Ref
from netemu.experiments.fields import Problems
from netemu.experiments.located import LMap, ScenarioError, load_file, line_of

LAB_HINT = "run in the lab VM (docs/labvm.md)"
FEATURE_WORDS = {"sch_netem": "netem (sch_netem)", "sch_htb": "htb (sch_htb)"}


@dataclass
class Plan:
    """The runs one scenario file makes (one per variant and proxy mode), and notes for the user."""

    file: str
    runs: list[schema.Scenario]
    notes: list[str] = field(default_factory=list)
    document: Any = None


def load_plan(path: str | Path, *, small: bool = False, seed: int | None = None,
              verdicts: Mapping[str, Any] | None = None, modes_available: tuple[str, ...] | None = None,
              overrides: list[str] = ()) -> Plan:
    """Every run of the scenario at ``path``, checked; ScenarioError listing every problem.
    ``overrides``: ``FIELD.PATH=YAML`` from the command line (``cluster.nodes=8``), merged first."""
    from netemu.agent.proxy import modes as proxy_modes

    file = str(path)
    doc = load_file(path)
    for text in overrides:
        doc = schema.merge(doc, override(text))
    problems = Problems(file)
    notes: list[str] = []
    selectable = modes_available if modes_available is not None else proxy_modes.selectable()
    docs = schema.split_variants(doc, file, small)
    for_each = doc.get("for_each") if isinstance(doc, dict) else None
    if for_each is not None:
        if for_each not in schema.FOR_EACH:
            problems.add(line_of(doc, "for_each"), f"for_each: {for_each!r}: one of {', '.join(schema.FOR_EACH)}")
        else:
            usable = [m for m in selectable if not mode_problems(m, verdicts)]
            for m in selectable:
                if m not in usable:
                    notes.append(f"proxy mode {m} left out: {'; '.join(mode_problems(m, verdicts))}")
            if not usable:
                problems.add(line_of(doc, "for_each"), "for_each: proxy_mode: no proxy mode can run on this kernel")
            docs = [(f"{v}-{m}" if v else m, _with_mode(d, m)) for v, d in docs for m in usable]
    runs = []
    for variant, d in docs:
        try:
            run = schema.parse(d, file, variant=variant, seed=seed)
        except ScenarioError as exc:
            problems.items += [p for p in exc.problems if p not in problems.items]
            run = getattr(exc, "partial", None)
            if run is None:
                continue
        before = len(problems.items)
        check(run, problems, verdicts, selectable)
        problems.items[before:] = [p for p in problems.items[before:] if p not in problems.items[:before]]
        runs.append(run)
    if problems.items:
        raise ScenarioError(sorted(problems.items, key=lambda p: p.line or 0))
    return Plan(file, runs, notes, doc)


def override(text: str) -> LMap:
    """``a.b=VALUE`` (VALUE in YAML) -> {a: {b: VALUE}}; ScenarioError naming the option."""
    from netemu.experiments.located import Problem, load_text

    path, sep, value = text.partition("=")
    keys = path.split(".")
    if not sep or not all(keys) or keys[0] not in schema.TOP_FIELDS:
        raise ScenarioError([Problem("--set", None, f"{text!r}: expected FIELD[.FIELD...]=VALUE with FIELD one of "
                                                    f"{', '.join(schema.TOP_FIELDS)}")])
    out: Any = load_text(value or "null", f"--set {path}") if value.strip() else None
    for key in reversed(keys):
        wrapped = LMap({key: out})
        wrapped.file = "--set"
        out = wrapped
    return out


def _with_mode(doc: LMap, mode: str) -> LMap:
    cluster = doc.get("cluster") if isinstance(doc.get("cluster"), dict) else LMap()
    return schema.merge(doc, {"cluster": schema.merge(cluster, {"proxy_mode": mode})})


def mode_problems(mode: str, verdicts: Mapping[str, Any] | None) -> list[str]:
    from netemu import features
    if verdicts is None:
        return []
    return [p.message for p in features.problems(verdicts, [f"proxy-mode:{mode}"]) if p.fatal]


def need_problems(want: str, what: str, verdicts: Mapping[str, Any] | None) -> list[str]:
    from netemu import features
    if verdicts is None:
        return []
    return [f"{what} needs {FEATURE_WORDS.get(p.feature, p.feature)}, which this kernel lacks: {LAB_HINT}"
            for p in features.problems(verdicts, [want]) if p.fatal]


# ---- the checks of one run ------------------------------------------------------------------

def node_names(cluster: schema.ClusterSpec) -> tuple[list[str], str]:
    """(worker names, control-plane name) of the cluster the scenario asks for."""
    if cluster.topology is None:
        return (["worker"] + [f"worker{i}" for i in range(2, (cluster.nodes or 0) + 1)]), "control-plane"
    from netemu.emulator.plan import make_plan
    from netemu.emulator.topoload import load_topo
    plan = make_plan(load_topo(cluster.topology), "/nonexistent/netemu-experiment-check")
    return [n.name for n in plan.workers], plan.control_plane.name


def check(run: schema.Scenario, problems: Problems, verdicts, selectable: tuple[str, ...]) -> None:
    variant = f" (variant {run.variant})" if run.variant else ""
    try:
        workers, cp = node_names(run.cluster)
    except Exception as exc:  # TopologyError, PlanError: the user's topology, said in one line
        problems.add(run.cluster_line, f"cluster.topology: {exc}{variant}")
        workers, cp = [], "control-plane"
    _check_modes(run, problems, verdicts, selectable, workers, variant)
    from netemu.api import kinds

    objects = {(m.kind, m.namespace, m.name): m for m in run.manifests}
    for m in run.manifests:
        if sum(1 for o in run.manifests if (o.kind, o.namespace, o.name) == (m.kind, m.namespace, m.name)) > 1:
            problems.add(m.line, f"manifests: {m.kind} {m.namespace}/{m.name} is given twice ({m.where})")
        if kinds.by_kind(str(m.obj.get("apiVersion")), m.kind) is None:
            problems.add(m.line, f"manifests: {m.obj.get('apiVersion')} {m.kind} ({m.where}) is not a kind netemu's "
                                 f"API server serves")
    for ev in run.events:
        if ev.at > run.duration:
            problems.add(ev.line, f"event at {ev.at:g} s is after the end of the experiment ({run.duration:g} s){variant}")
        for ref in ev.params["_refs"]:
            _check_ref(ref, objects, workers, cp, problems, variant, ev.kind)
        for want, what in ev.params["_needs"]:
            for msg in need_problems(want, what, verdicts):
                problems.add(ev.line, msg + variant)
    for ph in run.phases:
        _check_phase(ph, run, objects, workers, cp, problems, variant)


def _check_modes(run, problems, verdicts, selectable, workers, variant) -> None:
    wanted = [("cluster.proxy_mode", run.cluster.proxy_mode)] + \
        [(f"cluster.proxy_modes.{n}", m) for n, m in run.cluster.proxy_modes]
    for where, mode in wanted:
        if mode not in selectable:
            problems.add(run.cluster_line, f"{where}: proxy mode {mode!r} cannot run here (selectable: "
                                           f"{', '.join(selectable)}){variant}")
            continue
        for msg in mode_problems(mode, verdicts):
            problems.add(run.cluster_line, f"{where}: {msg}{variant}")
    for node, _ in run.cluster.proxy_modes:
        if workers and node not in workers:
            problems.add(run.cluster_line, f"cluster.proxy_modes: no worker node {node!r} "
                                           f"(workers: {', '.join(workers)}){variant}")


def _check_ref(ref: Ref, objects: dict, workers: list[str], cp: str, problems: Problems, variant: str,
               kind: str) -> None:
    if ref.kind == "node":
        allowed = workers + ([cp] if kind == "link" else [])
        if workers and ref.name not in allowed:
            problems.add(ref.line, f"no node {ref.name!r} in this cluster (nodes{'' if kind == 'link' else ' with an agent'}: "
                                   f"{', '.join(allowed)}){variant}")
        return
    if (ref.kind, ref.namespace, ref.name) not in objects:
        have = sorted(n for k, ns, n in objects if k == ref.kind and ns == ref.namespace)
        problems.add(ref.line, f"no {ref.kind} {ref.name!r} in namespace {ref.namespace} among the manifests"
                               + (f" ({ref.kind}s: {', '.join(have)})" if have else "") + variant)


def _check_phase(ph: schema.Phase, run, objects, workers, cp, problems: Problems, variant: str) -> None:
    if ph.start >= run.duration:
        problems.add(ph.line, f"phase {ph.name} starts at {ph.start:g} s, at or after the end ({run.duration:g} s){variant}")
    elif not ph.until_end and ph.spec.duration is not None and ph.start + ph.spec.duration > run.duration + 1e-9:
        problems.add(ph.line, f"phase {ph.name} ends at {ph.start + ph.spec.duration:g} s, after the end "
                              f"({run.duration:g} s){variant}")
    kind, sep, name = ph.source.partition("/")
    if not sep:
        kind, name = ("external", "") if ph.source == "external" else ("pod", ph.source)
    if kind == "node":
        _check_ref(Ref("node", name, line=ph.line), objects, workers, cp, problems, variant, "link")
    elif kind in ("pod", "po"):
        _check_ref(Ref("Pod", name, ph.namespace, ph.line), objects, workers, cp, problems, variant, "traffic")
    elif kind != "external":
        problems.add(ph.line, f"phase {ph.name}: from {ph.source!r}: give POD, pod/POD, node/NAME or external[/NAME]")
    kind, sep, rest = ph.target.partition("/")
    name, _, port = rest.partition(":")
    if sep and kind in ("svc", "service"):
        ref = Ref("Service", name, ph.namespace, ph.line)
        _check_ref(ref, objects, workers, cp, problems, variant, "traffic")
        svc = objects.get(("Service", ph.namespace, name))
        if svc is not None and port:
            ports = (svc.obj.get("spec") or {}).get("ports") or []
            if not any(str(p.get("port")) == port or p.get("name") == port for p in ports):
                problems.add(ph.line, f"phase {ph.name}: port {port} is not a port of Service {name}{variant}")
    elif sep and kind == "node":
        _check_ref(Ref("node", name, line=ph.line), objects, workers, cp, problems, variant, "link")
    elif sep and kind in ("pod", "po"):
        _check_ref(Ref("Pod", name, ph.namespace, ph.line), objects, workers, cp, problems, variant, "traffic")
    if ph.node is not None:
        _check_ref(Ref("node", ph.node, line=ph.line), objects, workers, cp, problems, variant, "traffic")
