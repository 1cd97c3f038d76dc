"""Why a pod is where it is: ``netemu explain pod NAME`` (pure rendering + one fetch).

Reads what the scheduler left behind: the decision annotation (chosen node, every feasible
node's per-plugin weighted scores, the filter that rejected each other node) and the pod's
Events (Scheduled / FailedScheduling / evictions), and the PodScheduled condition.
"""

from __future__ import annotations

import json

from netemu.controllers.kube import Obj, condition, meta, name_of, ns_of
from netemu.controllers.scheduler.loop import SCORES_ANNOTATION
from netemu.controllers.scheduler.scores import SCORES


def decision_of(pod: Obj) -> dict | None:
    text = (meta(pod).get("annotations") or {}).get(SCORES_ANNOTATION)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def render(pod: Obj, events: list[Obj]) -> str:
    """The explanation as plain text, widest information first."""
    lines = [f"Pod {ns_of(pod)}/{name_of(pod)}"]
    node = (pod.get("spec") or {}).get("nodeName")
    sched = condition(pod, "PodScheduled") or {}
    if node:
        lines.append(f"  bound to node {node}")
    else:
        lines.append(f"  not scheduled: {sched.get('reason', 'Pending')}")
        if sched.get("message"):
            lines.append(f"  {sched['message']}")
    decision = decision_of(pod)
    if decision:
        plugins = [name for name, _, _ in SCORES]
        weights = {name: w for name, w, _ in SCORES}
        totals = decision.get("totals") or {}
        if totals:
            lines.append("")
            lines.append("  Scores of the feasible nodes (plugin score x weight; highest total wins):")
            header = ["NODE"] + [f"{p}(x{weights[p]})" for p in plugins] + ["TOTAL"]
            rows = []
            for n in sorted(totals, key=lambda k: (-totals[k], k)):
                per = (decision.get("scores") or {}).get(n) or {}
                mark = "*" if n == decision.get("node") else " "
                rows.append([mark + n] + [str(per.get(p, "-")) for p in plugins] + [str(totals[n])])
            widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
            for r in [header] + rows:
                lines.append("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        rejected = decision.get("rejected") or {}
        if rejected:
            lines.append("")
            lines.append("  Nodes filtered out:")
            for n in sorted(rejected):
                lines.append(f"    {n}: {'; '.join(rejected[n])}")
    elif node:
        lines.append("  (no scheduler decision recorded: bound by someone else, or spec.nodeName set)")
    mine = sorted((e for e in events if (e.get("involvedObject") or {}).get("name") == name_of(pod)),
                  key=lambda e: (e.get("lastTimestamp") or "", meta(e).get("name", "")))
    if mine:
        lines.append("")
        lines.append("  Events:")
        for e in mine:
            count = f" (x{e['count']})" if (e.get("count") or 1) > 1 else ""
            lines.append(f"    {e.get('lastTimestamp', '')}  {e.get('type', '')}  {e.get('reason', '')}: "
                         f"{e.get('message', '')}{count}")
    return "\n".join(lines)


async def explain_pod(client, namespace: str, name: str) -> str:
    from netemu.controllers.runtime import rt
    pod = await client.get(rt("Pod"), name, namespace)
    events = (await client.list(rt("Event"), namespace)).items  # filtered in render
    return render(pod, events)
