"""kube-scheduler: pure filter/score pipeline (framework.py) and the watch loop that binds (loop.py)."""
