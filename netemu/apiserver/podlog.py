"""pods/log: the API server proxies ``kubectl logs`` to the kubelet of the pod's node.

Upstream (pkg/registry/core/pod/rest/log.go): the container defaults to the pod's only container
(a pod with several needs ``container=``), the pod must be bound to a node, and the request goes
to that node's kubelet (InternalIP, port 10250) at /containerLogs/NS/POD/CONTAINER with
tailLines / limitBytes / previous / follow passed on. The answer streams back as text/plain.
"""

from __future__ import annotations


import aiohttp
from aiohttp import web

from netemu.api import errors
from netemu.api.kinds import by_kind
from netemu.api.meta import Obj, pod_containers

KUBELET_PORT = 10250
PASSED_ON = ("tailLines", "limitBytes", "previous", "follow", "timestamps", "sinceSeconds")


def pick_container(pod: Obj, requested: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    name = (pod.get("metadata") or {}).get("name")
    if requested:
        if requested not in [c.get("name") for c in pod_containers(pod)]:
            raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise errors.BadRequest(f"a container name must be specified for pod {name}, "
                            f"choose one of: [{' '.join(names)}]")


def node_address(node: Obj) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


def kubelet_url(pod: Obj, node: Obj, container: str, query: dict[str, str]) -> str:
    ip = node_address(node)
    if not ip:
        raise errors.BadRequest(f"node {(node.get('metadata') or {}).get('name')} has no InternalIP address")
    meta = pod["metadata"]
    host = f"[{ip}]" if ":" in ip else ip
    params = "&".join(f"{k}={query[k]}" for k in PASSED_ON if k in query and query[k].replace("-", "").isalnum())
    return (f"http://{host}:{KUBELET_PORT}/containerLogs/{meta.get('namespace', 'default')}/{meta['name']}/"
            f"{container}" + (f"?{params}" if params else ""))


async def serve(registry, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
    """GET pods/NAME/log."""
    if request.method != "GET":
        raise errors.MethodNotAllowed(f"{request.method} is not allowed on pods/log")
    pod = await registry.get(by_kind("v1", "Pod"), namespace, name)
    container = pick_container(pod, request.query.get("container"))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.BadRequest(f"pod {name} does not have a host assigned")
    node = await registry.get(by_kind("v1", "Node"), None, node_name)
    url = kubelet_url(pod, node, container, dict(request.query))
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as upstream:
                if upstream.status >= 400:
                    text = (await upstream.text()).strip()
                    raise (errors.NotFound if upstream.status == 404 else errors.BadRequest)(text or upstream.reason)
                resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.InternalError(f"Get \"{url}\": {exc}") from None
