"""Benchmark: what authorization costs per request (API creates/s with RBAC on vs off, one run).

Two real ``netemu apiserver`` processes (no controllers), one with ``--authorization-mode
RBAC`` (the default: Node authorizer + RBAC over the default policy) and one with
``AlwaysAllow``, alternated ``--repeats`` times; each is driven over HTTPS by the netemu client
as two identities: the admin (kubeadm:cluster-admins, allowed by the cluster-admin rule) and a
ServiceAccount bound to ``edit`` by a RoleBinding (a JWT, a namespaced binding to resolve).
Authentication is the same in both modes, so the RBAC/AlwaysAllow ratio is the authorizer's
cost: ``python -m netemu.bench.rbac [--writes 1000 --concurrency 32 --repeats 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from netemu.api import kinds
from netemu.bench.apiserver import writes_per_second
from netemu.client import ApiClient
from netemu.testing.apiserver_process import ApiServerProcess

SA = kinds.by_resource("", "v1", "serviceaccounts")
RB = kinds.by_resource("rbac.authorization.k8s.io", "v1", "rolebindings")


async def measure(kubeconfig: Path, writes: int, concurrency: int, tag: str) -> dict[str, float]:
    async with ApiClient.from_kubeconfig(str(kubeconfig), timeout=120) as admin:
        await admin.create(SA, {"metadata": {"name": "bench", "namespace": "default"}}, "default")
        await admin.create(RB, {"metadata": {"name": "bench-edit", "namespace": "default"},
                                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                            "name": "edit"},
                                "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "default"}]})
        answer = await admin.request("POST", "/api/v1/namespaces/default/serviceaccounts/bench/token",
                                     body={"kind": "TokenRequest", "spec": {}})
        sa = admin.with_token(answer["status"]["token"])
        try:
            return {"admin_seq": await writes_per_second(admin, f"{tag}-as", writes // 4, 1),
                    "admin_par": await writes_per_second(admin, f"{tag}-ap", writes, concurrency),
                    "sa_seq": await writes_per_second(sa, f"{tag}-ss", writes // 4, 1),
                    "sa_par": await writes_per_second(sa, f"{tag}-sp", writes, concurrency)}
        finally:
            await sa.close()


def run_mode(mode: str, args: argparse.Namespace, tag: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="netemu-bench-rbac-") as tmp:
        server = ApiServerProcess(Path(tmp), extra_args=["--authorization-mode", mode]).start()
        try:
            return asyncio.run(measure(server.kubeconfig, args.writes, args.concurrency, tag))
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"RBAC": [], "AlwaysAllow": []}
    for i in range(args.repeats):
        for mode in ("RBAC", "AlwaysAllow") if i % 2 == 0 else ("AlwaysAllow", "RBAC"):
            runs[mode].append(run_mode(mode, args, f"r{i}"))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    print("| identity | in flight | RBAC creates/s | AlwaysAllow creates/s | RBAC / AlwaysAllow |")
    print("|---|---|---|---|---|")
    for who, label in (("admin", "admin (cluster-admin)"), ("sa", "ServiceAccount (edit RoleBinding)")):
        for kind, flight in (("seq", "1"), ("par", str(args.concurrency))):
            on, off = med["RBAC"][f"{who}_{kind}"], med["AlwaysAllow"][f"{who}_{kind}"]
            print(f"| {label} | {flight} | {on:.0f} | {off:.0f} | {on / off:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
