"""What a kernel trace of one real packet found, next to what the offline tracer predicts.

Mode-independent: a mode's ``kernel_tracer`` hook (modes.py; iptables: TRACE + ``xtables-monitor
--trace``, nftables: ``meta nftrace`` + ``nft monitor trace``) returns a ``KernelPath`` (the
chains the packet went through as ``table:chain``, in first-visit order, the DNAT destination
the kernel chose, the raw trace lines), and ``compare`` sets it beside the mode's offline
``TraceResult`` for the same packet. A mismatch is reported in words, never hidden: that is the
point of running both.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from netemu.agent.proxy.tracing import TraceResult


@dataclass
class KernelPath:
    chains: list[str]                  # "nat:KUBE-SVC-...", first-visit order
    destination: str | None            # "ip:port" after DNAT (None: not translated)
    lines: list[str] = field(default_factory=list)
    verdict: str | None = None         # the last verdict seen (ACCEPT, DROP, ...)


@dataclass
class KernelTrace:
    """The comparison ``netemu trace --kernel`` prints."""

    kernel: KernelPath
    predicted: TraceResult
    matched_outcome: int | None        # index into predicted.outcomes, None: no outcome matches
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict:
        return {"kernel": asdict(self.kernel), "predicted": self.predicted.to_dict(),
                "matched_outcome": self.matched_outcome, "mismatches": self.mismatches, "ok": self.ok}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        k, p = self.kernel, self.predicted
        lines = [f"packet {p.packet.proto} {p.packet.src} -> {p.packet.dst}:{p.packet.dport} ({p.origin}, {p.hook})",
                 "kernel (one real packet):", *(f"  {c}" for c in k.chains),
                 f"  DNAT to {k.destination or '-'}"]
        if self.matched_outcome is not None:
            o = p.outcomes[self.matched_outcome]
            lines.append(f"offline tracer: the same path, outcome {self.matched_outcome + 1} of {len(p.outcomes)} "
                         f"(probability {o.probability:.4f})")
        else:
            lines.append("offline tracer predicted:")
            for i, o in enumerate(p.outcomes, 1):
                lines.append(f"  {i}. p={o.probability:.4f} {o.verdict} -> {o.destination or '-'}: {' > '.join(o.chains)}")
        lines += [f"MISMATCH: {m}" for m in self.mismatches] or ["kernel and offline tracer agree"]
        return "\n".join(lines) + "\n"


def watch(monitor: list[str], send: Callable[[], None], remove: Callable[[], None], timeout: float = 3.0,
          popen=subprocess.Popen) -> str:
    """Run the kernel's trace monitor (argv), ``send()`` the packet while it listens, then call
    ``remove`` (take the trace rule away) and return what the monitor printed -- everything
    stopped and removed whatever happens. Run the monitor line-buffered (``stdbuf -oL``): a
    block-buffered one loses its last lines when it is stopped."""
    proc = None
    out = ""
    try:
        proc = popen(monitor, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        time.sleep(0.3)                      # the monitor subscribes to the trace netlink group
        send()
        time.sleep(min(1.0, timeout))         # the answer's way back and the last hooks
    finally:
        remove()
        if proc is not None:
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
    return out or ""


def service_chains(chains: list[str]) -> list[str]:
    """The chains that make the load-balancing decision (iptables: nat KUBE-SVC/KUBE-SEP/KUBE-EXT...;
    nftables: the per-Service chains, whose names all carry a "/")."""
    return [c for c in chains if c.split(":", 1)[-1].startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-",
                                                                  "KUBE-SVL-", "KUBE-FW-")) or "/" in c]


def compare(kernel: KernelPath, predicted: TraceResult) -> KernelTrace:
    """Find the predicted outcome the kernel's path is; explain every difference."""
    if not kernel.chains:
        return KernelTrace(kernel, predicted, None, ["the kernel traced no packet (was it sent? did it reach this node?)"])
    for i, o in enumerate(predicted.outcomes):
        if o.chains == kernel.chains and (o.destination or None) == kernel.destination:
            return KernelTrace(kernel, predicted, i, [])
    problems = []
    ksvc = service_chains(kernel.chains)
    predicted_svc = [service_chains(o.chains) for o in predicted.outcomes]
    if ksvc not in predicted_svc:
        problems.append(f"the kernel went through {' > '.join(ksvc) or 'no Service chain'}; the offline tracer "
                        f"predicts {' | '.join(' > '.join(s) or 'no Service chain' for s in predicted_svc) or 'nothing'}")
    want = sorted({o.destination or "-" for o in predicted.outcomes})
    if (kernel.destination or "-") not in want:
        problems.append(f"the kernel translated to {kernel.destination or 'nothing'}; predicted {', '.join(want)}")
    if not problems:
        same = [o for o in predicted.outcomes if service_chains(o.chains) == ksvc]
        problems.append("same Service chains, but the whole path differs: kernel "
                        f"{' > '.join(kernel.chains)}; predicted {' > '.join(same[0].chains) if same else '?'}")
    return KernelTrace(kernel, predicted, None, problems)
