"""The kubelet of netemu's node agent.

- kubelet.py: registers the Node, heartbeats its Lease, sets up the node network, one worker per
  bound pod; nodestatus.py: the Node / Lease objects and the flags that shape them (pure).
- worker.py: one pod's life (sandbox, containers, restarts, probes, status, termination), with
  pure status.py (phase, conditions, containerStatuses, adoption after an agent restart),
  probes.py (probe state machines), backoff.py, termination.py; probing.py runs one probe;
  lifecycle.py its containers' postStart/preStop hooks (pure hooks.py: which, their messages).
- cri.py: the runtime contract the worker drives; runtime_adapter.py maps it onto
  netemu.agent.runtime.
- logserver.py: /containerLogs on the node IP's port 10250 (the API server's pods/log proxies to
  it); events.py: the kubelet's Events; conditions.py: condition/time helpers.
The lab for kernel tests (an API server and one agent in namespaces of their own) is
netemu/testing/agentlab.py; the agent benchmark netemu/bench/agent.py.
"""
