"""``netemu apiserver``: the control plane alone (API server, and the controllers unless told not).

Prints where the kubeconfig is, serves until SIGTERM or Ctrl-C, then stops cleanly (exit 0,
store closed). Bad flags are caught before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from pathlib import Path

from netemu.cli.main import Command, UsageError


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:6443")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def parse_duration(text: str, flag: str) -> float:
    """Go-style durations (``1h``, ``30m``, ``90s``, ``500ms``), as upstream's flags take them."""
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r}: expected a positive duration, e.g. 1h, 30m, 90s")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_port_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    if not sep or not first.isdigit() or not last.isdigit() or not 1 <= int(first) <= int(last) <= 65535:
        raise UsageError(f"--service-node-port-range {text!r}: expected FIRST-LAST, e.g. 30000-32767")
    return int(first), int(last)


def _controller_options():
    try:
        from netemu.controllers import options
    except ImportError:
        return None
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="127.0.0.1:6443", help="HOST:PORT to serve on (default %(default)s)")
    parser.add_argument("--store", default=None,
                        help="sqlite:PATH or etcd:URL[,URL...] (default: sqlite:STATE_DIR/state.db)")
    parser.add_argument("--state-dir", required=True, help="where the admin token and kubeconfig live")
    parser.add_argument("--advertise-address", metavar="IP", default=None,
                        help="IP pods reach the API server at: the kubernetes Service's endpoints and "
                             "a certificate SAN (default: the --listen host when it is one)")
    parser.add_argument("--service-node-port-range", metavar="FIRST-LAST", default="30000-32767",
                        help="NodePorts to allocate from (default %(default)s)")
    parser.add_argument("--no-controllers", action="store_true", help="serve the API only")
    parser.add_argument("--event-ttl", metavar="DURATION", default="1h",
                        help="how long an Event is kept after its last change (default %(default)s)")
    parser.add_argument("--authorization-mode", choices=("RBAC", "AlwaysAllow"), default="RBAC",
                        help="RBAC (with the Node authorizer, as kubeadm; default) or AlwaysAllow "
                             "(every authenticated request allowed: for comparison runs)")
    options = _controller_options()
    if options is not None:
        options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from netemu.controlplane.server import ServerConfig, serve
    from netemu.store.factory import StoreURLError, parse_store_url

    host, port = parse_listen(args.listen)
    event_ttl = parse_duration(args.event_ttl, "--event-ttl")
    node_ports = parse_port_range(args.service_node_port_range)
    if args.advertise_address is not None:
        try:
            ipaddress.ip_address(args.advertise_address)
        except ValueError:
            raise UsageError(f"--advertise-address {args.advertise_address!r} is not an IP address") from None
    options = _controller_options()
    try:
        settings = options.settings_from_args(args) if options is not None else None
    except options.SettingsError as exc:
        raise UsageError(str(exc)) from None
    service_cidr = getattr(settings, "service_cidr", None) or "10.96.0.0/12"
    state_dir = Path(args.state_dir)
    store_url = args.store or f"sqlite:{state_dir / 'state.db'}"
    if args.store:
        try:
            parse_store_url(store_url)
        except StoreURLError as exc:
            raise UsageError(str(exc)) from None
    try:                                  # every flag checked: now the state dir may be made
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--state-dir {args.state_dir}: {exc.strerror}") from None
    config = ServerConfig(host, port, store_url, state_dir, controllers=not args.no_controllers,
                          controller_settings=settings, advertise_address=args.advertise_address,
                          service_cidr=service_cidr, node_ports=node_ports,
                          authorization_mode=args.authorization_mode, event_ttl=event_ttl)

    def ready(running) -> None:
        print(f"netemu apiserver: serving {running.url} (store {store_url})", flush=True)
        print(f"kubeconfig: {running.kubeconfig}", flush=True)
        print(f"  export KUBECONFIG={running.kubeconfig}", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop, ready)

    from netemu.api.errors import ServiceUnavailable
    from netemu.store.sqlite import StoreOpenError
    try:
        asyncio.run(main())
    except (OSError, StoreOpenError, ServiceUnavailable) as exc:  # port taken; store in use, foreign or unreachable
        print(f"netemu apiserver: error: {exc}", file=sys.stderr)
        return 1
    print("netemu apiserver: stopped", flush=True)
    return 0


COMMANDS = [Command("apiserver", "run the control plane: Kubernetes API server (+ controllers)",
                    add_arguments, run)]
