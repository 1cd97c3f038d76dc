"""``python -m netemu.testing.netexec NAME [netexec flags]``: the built-in agnhost netexec alone.

A backend for tests and benchmarks outside a cluster: the same in-process app a pod of
``agnhost netexec`` runs (netemu.agent.runtime.builtin: HTTP /hostname, /clientip, /echo, UDP
hostname/echo/clientip), serving in the namespace it was started in (``ip netns exec NS ...``)
and answering ``NAME`` as its hostname. Prints ``ready`` once it listens; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile

from netemu.agent.runtime.builtin import BuiltinContainer
from netemu.agent.runtime.images import Builtin, parse_agnhost


async def serve(name: str, flags: list[str]) -> int:
    spec = Builtin("netexec", parse_agnhost("netexec", flags))
    with tempfile.NamedTemporaryFile(prefix="netexec-", suffix=".log") as log:
        container = BuiltinContainer(spec, None, name, log.name)
        await container.start()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(container.stop()))
        return await container.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m netemu.testing.netexec NAME [--http-port=N] [--udp-port=N]", file=sys.stderr)
        return 2
    return asyncio.run(serve(args[0], args[1:]))


if __name__ == "__main__":
    sys.exit(main())
