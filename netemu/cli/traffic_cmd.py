"""``netemu traffic``: real load through a Service from a pod, a node or an external host.

A thin layer over netemu.traffic: the options become a LoadSpec, netemu.traffic.cluster resolves
``--from``/``--to`` against the running cluster (a clear error, exit 2, before any packet), the
run shows a live progress bar on a terminal, and ends with tables (or ``--json``), ``--out``
FILE.json|.csv and ``--plot`` FILE.png. Ctrl-C ends the run early and still reports it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from netemu.cli.access import DEFAULT_STATE_DIR
from netemu.cli.main import Command, UsageError


def add_load_arguments(p: argparse.ArgumentParser) -> None:
    """The LoadSpec's options (shared with anything else that sends load)."""
    p.add_argument("--proto", default="http", choices=("http", "tcp", "udp"), help="default %(default)s")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--connections", type=int, help="stop after N connections (default 100)")
    stop.add_argument("--requests", type=int, help="stop after N requests")
    stop.add_argument("--duration", type=float, help="stop after S seconds")
    p.add_argument("--rate", type=float, help="open loop: R new requests per second")
    p.add_argument("--concurrency", type=int, help="requests in flight (closed loop: default 1; with --rate: "
                                                   "the most in flight, default 256)")
    p.add_argument("--keepalive", action="store_true", help="reuse connections (HTTP keep-alive, one UDP flow)")
    p.add_argument("--per-connection", type=int, help="with --keepalive: requests per connection (default: no limit)")
    p.add_argument("--payload", type=int, default=0, metavar="BYTES",
                   help="HTTP: a request body of BYTES; tcp: BYTES sent; udp: an echo of BYTES")
    p.add_argument("--path", default="/hostname", help="HTTP path (default %(default)s: agnhost answers its name)")
    p.add_argument("--host", default=None, help="HTTP Host header (an Ingress rule's host; default the target address)")
    p.add_argument("--timeout", type=float, default=2.0, help="per connect and per request, seconds (default 2)")
    p.add_argument("--seed", type=int, default=0, help="payload bytes and Poisson arrivals (default 0)")
    p.add_argument("--arrival", default="uniform", choices=("uniform", "poisson"), help="with --rate")
    p.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    p.add_argument("--clientip-probes", type=int, help="after the load, N connections asking each backend the "
                                                       "client address it saw (default 10; 0 for raw tcp)")


def load_spec(args: argparse.Namespace):
    from netemu.traffic.spec import LoadSpec

    stop = args.connections, args.requests, args.duration
    probes = args.clientip_probes if args.clientip_probes is not None else (0 if args.proto == "tcp" else 10)
    return LoadSpec(proto=args.proto, connections=args.connections if any(v is not None for v in stop) else 100,
                    requests=args.requests, duration=args.duration, rate=args.rate, concurrency=args.concurrency,
                    keepalive=args.keepalive, per_connection=args.per_connection, payload=args.payload,
                    path=args.path, host=args.host, timeout=args.timeout, seed=args.seed, arrival=args.arrival,
                    clientip_probes=probes, workers=args.workers)


def parse_weights(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    out = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--weights wants NAME=WEIGHT,..., not {part!r}") from None
        if not sep or not name.strip() or out[name.strip()] < 0:
            raise UsageError(f"--weights wants NAME=WEIGHT (>= 0),..., not {part!r}")
    if not out or not sum(out.values()) > 0:
        raise UsageError("--weights: give at least one weight > 0")
    return out


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", required=True, metavar="POD|node/NAME|external[/NAME]",
                   help="where the traffic starts: a pod's namespace, a node's, or an external host (made on "
                        "demand, removed by netemu down): on the node network, or with `up --edge` an "
                        "internet client (203.0.113.10 up) behind the provider load balancer")
    p.add_argument("--to", dest="target", required=True, metavar="svc/NAME[:PORT]|pod/NAME:PORT|node/NAME:PORT|IP:PORT")
    p.add_argument("--via", choices=("clusterip", "nodeport", "loadbalancer"),
                   help="how a Service is reached (default: clusterip; from external: its LB address, else NodePort)")
    p.add_argument("--node", help="with --via nodeport: the node whose address is used (default: the first worker)")
    add_load_arguments(p)
    p.add_argument("--weights", metavar="NAME=W,...", help="expected shares for the chi-square test (default uniform)")
    p.add_argument("--out", metavar="FILE.json|FILE.csv", help="write the result (CSV: one row per second)")
    p.add_argument("--plot", metavar="FILE.png", help="plot answers, errors, latency and endpoint shares per second")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument("-n", "--namespace", default="default", help="namespace of POD and svc/NAME (default default)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=f"the cluster's state dir (default {DEFAULT_STATE_DIR})")
    p.add_argument("--kubeconfig", help="default: the state dir's")


def run_traffic(args: argparse.Namespace) -> int:
    from rich.console import Console

    from netemu.traffic import report
    from netemu.traffic.cluster import prepare
    from netemu.traffic.result import check_output
    from netemu.traffic.run import TrafficError
    from netemu.traffic.spec import SpecError

    weights = parse_weights(args.weights)
    err = Console(stderr=True)
    try:
        spec = load_spec(args).check()
        check_output(args.out, (".json", ".csv"))
        check_output(args.plot, (".png",))
        live = None if args.no_progress or args.json or not err.is_terminal else \
            report.Live(err, f"{args.source} -> {args.target}")
        prepared = asyncio.run(prepare(args.state_dir, args.source, args.target, spec, namespace=args.namespace,
                                       via=args.via, node=args.node, weights=weights, kubeconfig=args.kubeconfig,
                                       on_progress=live.update if live else None))
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"netemu: cannot reach the API server: {exc}", file=sys.stderr)
        return 1

    async def go():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, prepared.run.cancel)
        return await prepared.run.run()
    try:
        if live:
            with live:
                result = asyncio.run(go())
        else:
            result = asyncio.run(go())
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    except TrafficError as exc:
        print(f"netemu: {exc}", file=sys.stderr)
        return 1
    if args.out:
        result.write(args.out)
    if args.plot:
        report.plot(result, args.plot)
    src = prepared.source
    where = f"{src.kind} {src.name}" + (f" ({src.ip})" if src.ip else "")
    if args.json:
        print(result.to_json())
    else:
        Console().print(report.tables(result, where))
    return 0


COMMANDS = [
    Command("traffic", "send real load (http, tcp, udp) through a Service and measure it per endpoint",
            _args, run_traffic),
]
