"""The control-plane process: the store, the API server and (unless told not) the scheduler and
controllers in one process, started and stopped in order (``server``).

A layer above the API server, the client and the controllers, which never import each other
through it; ``netemu apiserver`` (netemu/cli/apiserver_cmd.py) runs it.
"""
