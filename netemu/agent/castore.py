"""Keep the system CA store out of a node agent's memory.

aiohttp builds two default SSL contexts when it is imported (aiohttp.connector); the verified
one calls ``ssl.create_default_context()``, which parses the whole system trust store (~140
certificates) into OpenSSL: 1.8 MB of RSS in every agent. The agent never uses that context:
its API client verifies the API server against the kubeconfig's CA with a context of its own
(netemu.client.rest), and a kubeconfig without a CA builds its own default context later,
after this has been undone. So the agent imports aiohttp with OpenSSL's default CA file pointed
at nothing, then puts the environment back (children, such as pod processes, never see it).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

ENV = "SSL_CERT_FILE"   # OpenSSL reads it when a context loads its default verify paths


@contextmanager
def without_system_ca_store() -> Iterator[bool]:
    """Import aiohttp inside this block; yields whether it had an effect (False when aiohttp
    was imported already: its contexts exist, nothing to save, nothing changed)."""
    if "aiohttp" in sys.modules:
        yield False
        return
    saved = os.environ.get(ENV)
    os.environ[ENV] = os.devnull
    try:
        yield True
    finally:
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved
