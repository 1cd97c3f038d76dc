"""netemu.store: the watchable, versioned key-value store (embedded SQLite default, etcd v3).

    from netemu.store import open_store
    store = open_store("sqlite:/var/lib/netemu/state.db")   # or "etcd:http://127.0.0.1:2379"

The contract is ``netemu.store.base.Store``; both backends pass tests/unit/test_store_contract.py.
"""

from netemu.store.base import ADDED, DELETED, MODIFIED, ListResult, Store, WatchEvent
from netemu.store.factory import StoreURLError, open_store, parse_store_url
from netemu.store.sqlite import StoreLocked, StoreOpenError

__all__ = ["ADDED", "DELETED", "MODIFIED", "ListResult", "Store", "WatchEvent", "StoreURLError",
           "StoreOpenError", "StoreLocked", "open_store", "parse_store_url"]
