"""The emulator: a Mininet network of nodes running a real control plane and node agents.

Where things are:
- ``topoload``   ``--topo FILE.py:Class[,args]`` -> a Mininet Topo (mn --custom style)
- ``plan``       pure: Topo -> names, addresses, roles/labels/taints, the processes' argv lists
- ``network``    effects: Mininet build/stop, netns attach, default routes, root .1, link up/down
- ``supervisor`` the process that holds a running cluster (bring-up, control socket, teardown)
- ``processes``  start through nsenter, stop/kill by PID after checking the cmdline
- ``ready``      waiting for the API server and Ready nodes
- ``state``      cluster.json, status.json and the locks in the state dir
- ``cleanup``    what a crashed run left, found from the state dir alone (pure planner + apply)
- ``status``     ``netemu status`` tables
- ``demo``       the end-to-end demo (``netemu demo``)
The commands are in netemu/cli/cluster_cmd.py; topologies in topologies/. The KWOK-style stand-in
agents of ``netemu up --fake-agents`` are netemu/testing/fakeagent.py.
"""
