"""The emulated cloud around a cluster: the internet edge and provider load balancer
(edge.py, lbplan.py, health.py, lb.py) and the cloud node lifecycle (nodes.py), run by the
supervisor (provider.py), which is the cloud: it knows which node hosts exist."""
