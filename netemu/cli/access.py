"""How the commands that talk to a cluster find it: ``--kubeconfig`` / ``$KUBECONFIG`` / the
state dir's kubeconfig, ``-n``, one API client, and an API error as one line (exit 1), like
kubectl. Shared by netemu/cli/apply_get_delete_cmd.py and netemu/cli/exec_logs_cmd.py."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from netemu.api import errors
from netemu.cli.main import UsageError
from netemu.client import ApiClient

DEFAULT_STATE_DIR = os.environ.get("NETEMU_STATE_DIR") or "/var/lib/netemu/default"   # as netemu up


def add_access_arguments(p: argparse.ArgumentParser, namespace: bool = True) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, else STATE_DIR/kubeconfig)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"the cluster's state dir (default {DEFAULT_STATE_DIR})")
    if namespace:
        p.add_argument("-n", "--namespace", help="namespace (default: default)")


def kubeconfig_path(args: argparse.Namespace) -> str:
    path = args.kubeconfig or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] \
        or str(Path(args.state_dir) / "kubeconfig")
    if not Path(path).is_file():
        raise UsageError(f"no kubeconfig at {path}: is a cluster up (netemu up), or give --kubeconfig")
    return path


def client_for(args: argparse.Namespace) -> ApiClient:
    return ApiClient.from_kubeconfig(kubeconfig_path(args), user_agent="netemu-cli")



def run_api(coro) -> Any:
    """Run one command's coroutine; an API error is one clear line, exit 1, like kubectl's."""
    try:
        return asyncio.run(coro)
    except errors.StatusError as exc:
        print(f"Error from server ({type(exc).reason}): {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # aiohttp's connection errors are OSErrors
        print(f"netemu: cannot reach the API server: {exc}", file=sys.stderr)
        return 1
