"""The async API client every netemu component uses (controllers, kubelet, kube-proxy, CLI).

Objects are plain Kubernetes JSON dicts, resources are addressed by ``ResourceType`` (from
``netemu.api.kinds``) plus namespace and name, and errors come back as the same StatusError
classes the server raised (``except errors.Conflict``). One aiohttp session per client; watches
are streams of ``(type, object)`` parsed line by line, like client-go's watch decoder.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp

from netemu.api.kinds import ResourceType
from netemu.client import kubeconfig, paths
from netemu.client.errors import from_status

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


@dataclass
class ObjectList:
    """What a list returns: the items and the list's resourceVersion (to start a watch from)."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None


def _meta(obj: dict[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


class ApiClient:
    """A connection to one API server with one bearer token.

    Use as ``async with ApiClient(server, token) as api:`` or call ``close()``. The session is
    created lazily, so a client may be built outside of a running event loop.
    """

    def __init__(self, server: str, token: str | None = None, *, ca_file: str | None = None,
                 ca_data: bytes | None = None, insecure: bool = False, timeout: float = 30.0,
                 user_agent: str = "netemu-client", cert_data: bytes | None = None,
                 key_data: bytes | None = None):
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._ssl: ssl.SSLContext | bool | None = None
        self._ca = (ca_file, ca_data.decode() if ca_data else None)
        self._client_cert = bool(cert_data and key_data)
        if self.server.startswith("https://"):
            if insecure and not cert_data:
                self._ssl = False
            else:
                self._ssl = ssl.create_default_context(
                    cafile=ca_file, cadata=ca_data.decode() if ca_data else None)
                if insecure:
                    self._ssl.check_hostname, self._ssl.verify_mode = False, ssl.CERT_NONE
                if cert_data and key_data:
                    _load_client_cert(self._ssl, cert_data, key_data)
        self._session: aiohttp.ClientSession | None = None

    def with_token(self, token: str, *, user_agent: str | None = None) -> "ApiClient":
        """Another client to the same server (same TLS trust) that authenticates with ``token``."""
        other = ApiClient.__new__(ApiClient)
        other.server, other.token, other.timeout = self.server, token, self.timeout
        other._headers = {**self._headers, "Authorization": f"Bearer {token}"}
        if user_agent:
            other._headers["User-Agent"] = user_agent
        other._ssl = self._ssl
        if isinstance(self._ssl, ssl.SSLContext) and self._client_cert:
            other._ssl = ssl.create_default_context(cafile=self._ca[0], cadata=self._ca[1])  # no client cert
        other._ca, other._client_cert = self._ca, False
        other._session = None
        return other

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None, **kwargs: Any) -> "ApiClient":
        access = kubeconfig.load(path, context)
        return cls(access.server, access.token, ca_file=access.ca_file, ca_data=access.ca_data,
                   insecure=access.insecure, cert_data=access.cert_data, key_data=access.key_data, **kwargs)

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        """One session; no connection limit, because every open watch holds a connection
        (HTTP/1.1 has no multiplexing) and a capped pool would queue requests behind them."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers,
                                                  connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = "application/json",
                      params: dict[str, object] | None = None) -> Any:
        """One API call; returns the decoded JSON answer or raises the server's StatusError."""
        url = self.server + path + paths.query_string(params or {})
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else None
        async with self._get_session().request(
                method, url, data=data, headers=headers, ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            text = await resp.text()
            try:
                decoded = json.loads(text) if text else None
            except ValueError:
                decoded = None
            if resp.status >= 400:
                raise from_status(resp.status, decoded, text)
            return decoded

    # -- the verbs ---------------------------------------------------------------------------

    async def get(self, rt: ResourceType, name: str, namespace: str | None = None, *,
                  subresource: str | None = None) -> dict[str, Any]:
        return await self.request("GET", paths.resource_path(rt, namespace, name, subresource))

    async def list(self, rt: ResourceType, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_token: str | None = None,
                   resource_version: str | None = None) -> ObjectList:
        """One page (``limit``) or the whole list; items carry apiVersion and kind."""
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "limit": limit, "continue": continue_token, "resourceVersion": resource_version}
        doc = await self.request("GET", paths.resource_path(rt, namespace), params=params)
        items = doc.get("items") or []
        for item in items:
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        meta = doc.get("metadata") or {}
        return ObjectList(items, meta.get("resourceVersion", ""), meta.get("continue") or None)

    async def list_all(self, rt: ResourceType, namespace: str | None = None, *,
                       page_size: int = 500, **selectors: Any) -> ObjectList:
        """Every page of a list, followed with continue tokens (consistent at one revision)."""
        first = await self.list(rt, namespace, limit=page_size, **selectors)
        items, token = list(first.items), first.continue_token
        while token:
            page = await self.list(rt, namespace, limit=page_size, continue_token=token, **selectors)
            items.extend(page.items)
            token = page.continue_token
        return ObjectList(items, first.resource_version)

    async def create(self, rt: ResourceType, obj: dict[str, Any],
                     namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or _meta(obj)[0] or ("default" if rt.namespaced else None)
        body = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        return await self.request("POST", paths.resource_path(rt, ns), body=body)

    async def update(self, rt: ResourceType, obj: dict[str, Any], *,
                     subresource: str | None = None) -> dict[str, Any]:
        """PUT the whole object; its metadata.resourceVersion makes it conditional (409 if stale)."""
        ns, name = _meta(obj)
        body = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        return await self.request("PUT", paths.resource_path(rt, ns, name, subresource), body=body)

    async def update_status(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.update(rt, obj, subresource="status")

    async def patch(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None,
                    *, patch_type: str = "merge", subresource: str | None = None) -> dict[str, Any]:
        """PATCH with ``patch_type`` "merge", "json" (a list of ops) or "strategic"."""
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_TYPES)}")
        return await self.request("PATCH", paths.resource_path(rt, namespace, name, subresource),
                                  body=patch, content_type=PATCH_TYPES[patch_type])

    async def delete(self, rt: ResourceType, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        """DELETE with DeleteOptions; returns the object (still there when graceful) or a Status."""
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        return await self.request("DELETE", paths.resource_path(rt, namespace, name), body=opts)

    async def delete_collection(self, rt: ResourceType, namespace: str | None = None, *,
                                label_selector: str | None = None, field_selector: str | None = None,
                                propagation_policy: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "propagationPolicy": propagation_policy}
        return await self.request("DELETE", paths.resource_path(rt, namespace), params=params)

    async def bind(self, namespace: str, pod_name: str, node_name: str) -> dict[str, Any]:
        """Schedule a pod (pods/binding), as the scheduler does."""
        from netemu.api.kinds import by_resource
        pods = by_resource("", "v1", "pods")
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod_name, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        return await self.request("POST", paths.resource_path(pods, namespace, pod_name, "binding"),
                                  body=body)

    async def watch(self, rt: ResourceType, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events after ``resource_version`` as ``(type, object)``; ends when the server ends it.

        Types are ADDED, MODIFIED, DELETED and BOOKMARK (only the resourceVersion is meaningful).
        An ERROR event is raised as its StatusError (``errors.Gone`` means: relist).
        """
        params = {"watch": "true", "resourceVersion": resource_version,
                  "labelSelector": label_selector, "fieldSelector": field_selector,
                  "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": allow_bookmarks or None}
        url = self.server + paths.resource_path(rt, namespace) + paths.query_string(params)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        async with self._get_session().get(url, ssl=self._ssl, timeout=timeout) as resp:
            if resp.status >= 400:
                text = await resp.text()
                try:
                    decoded = json.loads(text)
                except ValueError:
                    decoded = None
                raise from_status(resp.status, decoded, text)
            async for line in _lines(resp.content):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise from_status(int(obj.get("code") or 500), obj)
                yield kind, obj


def _load_client_cert(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a certificate chain only from paths: anonymous memory files (memfd), read
    through /proc/self/fd, so the key never touches a disk and nothing is left behind even when
    the process is killed mid-way (a temporary directory was, by agents killed at start-up)."""
    import os
    fds: list[int] = []
    try:
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            fd = os.memfd_create(f"netemu-{name}", os.MFD_CLOEXEC)
            fds.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        ctx.load_cert_chain(*(f"/proc/self/fd/{fd}" for fd in fds))
    finally:
        for fd in fds:
            os.close(fd)


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-separated records of any length (StreamReader.readline caps the line size).

    A chunk is split once (linear): the server batches many events per write, and splitting
    off one line at a time would copy the rest of the chunk for every event."""
    pending: list[bytes] = []                 # pieces of a record that spans chunks
    async for chunk in stream.iter_any():
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pending.append(chunk)
            continue
        if pending:
            pending.append(parts[0])
            parts[0] = b"".join(pending)
            pending = []
        tail = parts.pop()
        if tail:
            pending.append(tail)
        for line in parts:
            if line.strip():
                yield line
    rest = b"".join(pending)
    if rest.strip():
        yield rest
