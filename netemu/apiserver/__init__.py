"""The Kubernetes API server: REST + watch over the store, as real kubectl and client-go use it.

Where things are (the process that runs it with the store and the controllers is
netemu/controlplane/server.py):

- ``app``        aiohttp application: middlewares (metrics, Status errors, auth) and routes
- ``routing``    URL -> (resource, namespace, name, subresource) (pure)
- ``handlers``   one method per verb: decode, call the registry, render (JSON or Table)
- ``registry``   the storage side: strategy, allocation, namespaces, deletion, concurrency
- ``listing``    selectors, limit/continue paging at one revision
- ``watch``      store events -> chunked JSON event stream (bookmarks, 410, timeouts)
- ``deletion``   what DELETE does (grace periods, finalizers, propagation) (pure)
- ``tables``     server-side Table columns like upstream's printers (pure)
- ``discovery``, ``openapi``   what kubectl reads before it acts (pure)
- ``body``, ``protobuf``, ``protoschema``, ``patching``, ``fieldcheck``   request bodies
- ``auth``, ``certs``          bearer token, CA and serving certificate in the state dir
- ``bootstrap``  system namespaces and the ``kubernetes`` Service
- ``metrics``    /metrics (apiserver_request_total, ...)

An in-process server for tests is netemu/testing/apiserver.py; the benchmarks are in netemu/bench/.
"""
