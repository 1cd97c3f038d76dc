"""open_store URLs: the good ones open the right backend, bad ones fail with a clear message."""

import asyncio

import pytest

from netemu.store import StoreURLError, open_store, parse_store_url
from netemu.store.sqlite import SqliteStore


def test_sqlite_url_opens_the_embedded_store(tmp_path):
    async def main():
        store = open_store(f"sqlite:{tmp_path}/state.db", history=50)
        try:
            assert isinstance(store, SqliteStore) and store.history == 50
            await store.create("/registry/namespaces/default", {"kind": "Namespace"})
            assert await store.current_revision() == 1
        finally:
            await store.close()
    asyncio.run(main())


def test_etcd_urls_parse_into_endpoints():
    assert parse_store_url("etcd:http://127.0.0.1:2379") == ("etcd", ["http://127.0.0.1:2379"])
    assert parse_store_url("etcd:http://a:1, https://b:2/") == ("etcd", ["http://a:1", "https://b:2"])


@pytest.mark.parametrize("url, words", [
    ("", "bad store URL"),
    ("state.db", "bad store URL"),
    ("mysql:foo", "unknown store 'mysql'"),
    ("sqlite:", "needs a file path"),
    ("sqlite:/no/such/dir/x.db", "does not exist"),
    ("etcd:", "bad store URL"),
    ("etcd:127.0.0.1:2379", "bad etcd endpoint"),
    ("etcd:http://127.0.0.1", "bad etcd endpoint"),
    ("etcd:http://127.0.0.1:2379/v3", "bad etcd endpoint"),
    ("etcd:http://h:1,ftp://h:2", "bad etcd endpoint 'ftp://h:2'"),
    ("etcd:http://h:notaport", "bad etcd endpoint"),
])
def test_bad_urls_say_what_is_wrong(url, words):
    with pytest.raises(StoreURLError, match=words.replace("(", r"\(")):
        open_store(url)


def test_sqlite_url_naming_a_directory_is_refused(tmp_path):
    with pytest.raises(StoreURLError, match="is a directory"):
        parse_store_url(f"sqlite:{tmp_path}")
