"""netemu.agent.runtime: pod sandboxes and containers on one node (what the kubelet calls).

Typical use by the kubelet (all coroutines run on the agent's asyncio loop)::

    rt = NodeRuntime(state_dir, pod_cidr)        # after node IPAM gave node.spec.podCIDR
    await rt.setup_node()                        # cni0 + .1 gateway, br_netfilter, ip_forward
    await rt.recover()                           # restarted agent: kill last run's processes
    await rt.gc_sandboxes(uids_of_my_pods)       # sandboxes of pods no longer here
    await rt.sync_routes(node_objects, my_name)  # other nodes' podCIDRs via their InternalIP
    sb = await rt.create_sandbox(pod)            # netns nep-<uid11>, veth, IP -> sb.ip, sb.netns
        # raises SandboxError (nothing left behind) or IPAMExhausted
    sb = rt.host_sandbox(pod, node_ip, node_name)   # spec.hostNetwork: the node's own namespace
    c = await rt.start_container(sb, pod, container_spec, restart_count)
        # raises ContainerStartError(reason, message, exit_code): ImageNotSupported -> Waiting
    code = await c.wait()                        # exit code (built-in /exit, process exit)
    code = await c.stop(grace_seconds)           # SIGTERM, SIGKILL after grace
    c.kill()                                     # SIGKILL now (wait() then gives 137)
    await rt.remove_sandbox(pod_uid)             # after its containers stopped
    rt.log_path(pod, container_name, restart_count)   # the file /containerLogs serves

Probes (from the node's namespace, as upstream's kubelet): ``await http_get(sb.ip, port, path,
timeout)``, ``await tcp_connect(sb.ip, port, timeout)`` -> ProbeResult(ok, message, status);
exec probes and ``netemu exec``: ``await exec_in(sb.netns, argv, timeout=...)`` ->
ExecResult(exit_code, stdout, stderr, timed_out). Pure helpers: ``resolve(container)`` says how
an image would run (Builtin / Process / Unsupported), ``pod_netns(uid)`` names a pod's netns.

Why in-process built-in images: see builtin.py (1000 pods on a 2-core box, <= 200 KB each).
"""

from .builtin import BuiltinContainer, ContainerStartError
from .images import SUPPORTED_TEXT, Builtin, Process, Unsupported, resolve
from .ipam import IPAMExhausted, PodIPAM
from .names import host_veth, pod_hostname, pod_netns
from .node import NodeRuntime
from .nodenet import NodeNetwork, peer_routes, plan_routes
from .probe import ExecResult, ProbeResult, exec_in, http_get, tcp_connect
from .process import ProcessContainer
from .sandbox import Sandbox, SandboxError, SandboxManager

__all__ = [
    "BuiltinContainer", "ContainerStartError", "SUPPORTED_TEXT", "Builtin", "Process",
    "Unsupported", "resolve", "IPAMExhausted", "PodIPAM", "host_veth", "pod_hostname",
    "pod_netns", "NodeRuntime", "NodeNetwork", "peer_routes", "plan_routes", "ExecResult",
    "ProbeResult", "exec_in", "http_get", "tcp_connect", "ProcessContainer", "Sandbox",
    "SandboxError", "SandboxManager",
]
