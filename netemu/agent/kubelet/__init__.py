"""The kubelet: Node registration and Lease heartbeats (kubelet.py, nodestatus.py), one worker per
pod (worker.py) with pure status (status.py), probe (probes.py), back-off (backoff.py) and
termination (termination.py) logic, the runtime contract it drives (cri.py), and the container
log server the API server's pods/log proxies to (logserver.py)."""
