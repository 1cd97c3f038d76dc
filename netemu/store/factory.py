"""``open_store(url)``: the one place that turns a ``--store`` URL into a backend.

    sqlite:PATH                          embedded store in one file (the default)
    etcd:http://HOST:PORT[,http://...]   a real etcd v3 (3.4+) through its JSON gateway

Bad URLs raise ``StoreURLError`` (a ValueError) with a message the CLI can print as is.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from netemu.store.base import Store


class StoreURLError(ValueError):
    """A --store value that names no usable backend."""


USAGE = "expected sqlite:PATH or etcd:http://HOST:PORT[,http://HOST:PORT...]"


def parse_etcd_endpoints(spec: str) -> list[str]:
    """``http://a:2379,http://b:2379`` -> normalised endpoint list (scheme, host and port checked)."""
    endpoints = []
    for part in spec.split(","):
        part = part.strip()
        url = urlsplit(part)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or port is None \
                or url.path not in ("", "/") or url.query or url.fragment:
            raise StoreURLError(f"bad etcd endpoint {part!r}: {USAGE}")
        endpoints.append(f"{url.scheme}://{url.netloc}")
    return endpoints


def parse_store_url(url: str) -> tuple[str, object]:
    """("sqlite", path) or ("etcd", [endpoints]); pure, so the CLI can validate before starting."""
    if not isinstance(url, str) or ":" not in url:
        raise StoreURLError(f"bad store URL {url!r}: {USAGE}")
    scheme, _, rest = url.partition(":")
    if scheme == "sqlite":
        if not rest or rest.startswith("//"):
            raise StoreURLError(f"bad store URL {url!r}: sqlite needs a file path (sqlite:PATH)")
        parent = os.path.dirname(os.path.abspath(rest))
        if not os.path.isdir(parent):
            raise StoreURLError(f"bad store URL {url!r}: directory {parent} does not exist")
        if os.path.isdir(rest):
            raise StoreURLError(f"bad store URL {url!r}: {rest} is a directory, not a database file")
        return "sqlite", rest
    if scheme == "etcd":
        if not rest:
            raise StoreURLError(f"bad store URL {url!r}: {USAGE}")
        return "etcd", parse_etcd_endpoints(rest)
    raise StoreURLError(f"unknown store {scheme!r} in {url!r}: {USAGE}")


def open_store(url: str, **options) -> Store:
    """A ready-to-use store for ``url``; ``options`` go to the backend (e.g. ``history=``)."""
    kind, target = parse_store_url(url)
    if kind == "sqlite":
        from netemu.store.sqlite import SqliteStore
        return SqliteStore(target, **options)
    from netemu.store.etcd import EtcdStore
    return EtcdStore(target, **options)
