"""netemu.traffic: real load through the emulation, measured per endpoint.

The ``netemu traffic`` command is a thin layer over this API::

    from netemu.traffic import LoadSpec, Scope, Target, TrafficRun

    run = TrafficRun(Target("10.96.0.50", 80, "svc/web"),
                     LoadSpec(requests=1000, concurrency=8, clientip_probes=10),
                     scope=Scope.of(["10.96.0.50"]), netns="nep-0123456789a",
                     expected=["web-1", "web-2", "web-3"])
    result = await run.run()             # or netemu.traffic.run(...) from synchronous code
    result.endpoints                     # {"web-1": 334, "web-2": 331, "web-3": 335}
    result.chi_square["p_value"]         # uniform? (or against ``weights=``)
    result.latency["p99"], result.errors, result.clientips, result.series[3].share()

``run.cancel()`` (thread-safe) ends a run early; the result keeps what was measured.
"""

from netemu.traffic.result import Result, Second
from netemu.traffic.run import Progress, Scope, TrafficError, TrafficRun, run
from netemu.traffic.spec import LoadSpec, SpecError, Target

__all__ = ["LoadSpec", "Progress", "Result", "Scope", "Second", "SpecError", "Target", "TrafficError",
           "TrafficRun", "run"]
