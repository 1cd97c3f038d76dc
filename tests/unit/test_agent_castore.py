"""The agent imports aiohttp without parsing the system CA store, and leaves the environment
as it found it (a fresh interpreter each time: aiohttp must not be imported yet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, sys
from netemu.agent.castore import ENV, without_system_ca_store
before = os.environ.get(ENV)
with without_system_ca_store() as applied:
    import aiohttp.connector
after = os.environ.get(ENV)
with without_system_ca_store() as again:
    pass
ctx = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
print(json.dumps({"applied": applied, "again": again, "before": before, "after": after,
                  "x509": ctx.cert_store_stats()["x509"] if ctx is not None else None}))
"""


def probe(env_value):
    env = dict(os.environ)
    env.pop("SSL_CERT_FILE", None)
    if env_value is not None:
        env["SSL_CERT_FILE"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_aiohttp_default_context_holds_no_system_certificates():
    result = probe(None)
    assert result["applied"] is True
    assert result["x509"] in (0, None)    # None: an aiohttp without import-time contexts


def test_environment_is_restored_unset_and_set():
    assert probe(None)["after"] is None
    result = probe("/some/ca.pem")
    assert result["before"] == result["after"] == "/some/ca.pem"


def test_no_effect_once_aiohttp_is_imported():
    assert probe(None)["again"] is False
