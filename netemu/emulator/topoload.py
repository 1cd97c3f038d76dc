"""``--topo FILE.py:Class[,args]``: load any Mininet Topo the way ``mn --custom`` does.

Args after the class name are parsed like mn's (``mininet.util.splitArgs``): positional values
and ``key=value`` pairs, numbers made numeric. The class may be named by its Python name or by a
key of the file's ``topos`` dict (mn's convention). Every failure is a ``TopologyError`` with a
one-line message, raised before anything is built.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# The repository's topologies/ folder: ``--topo topologies/cluster.py:...`` works from any cwd.
REPO_TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


class TopologyError(ValueError):
    """A topology spec that cannot be loaded: unknown file, unknown class, bad arguments."""


def split_spec(spec: str) -> tuple[str, str, list, dict]:
    """``"dir/f.py:Cls,3,k=v"`` -> (file, class name, args, kwargs); pure."""
    from mininet.util import splitArgs

    path, sep, rest = spec.rpartition(":")
    if not sep or not path or not rest:
        raise TopologyError(f"--topo {spec!r}: expected FILE.py:Class[,args], e.g. topologies/cluster.py:ClusterTopo,3")
    name, args, kwargs = splitArgs(rest)
    if not name:
        raise TopologyError(f"--topo {spec!r}: no class name after ':'")
    return path, name, args, kwargs


def resolve_file(path: str) -> Path:
    """The file as given (relative to the cwd), else under the repository's topologies/ folder."""
    candidates = [Path(path)]
    if not os.path.isabs(path):
        candidates.append(REPO_TOPOLOGIES / Path(path).name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TopologyError(f"--topo: topology file {path!r} not found")


def load_module(path: Path):
    module_name = "netemu_topo_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TopologyError(f"--topo: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: any error in it is their input, reported in one line
        raise TopologyError(f"--topo: loading {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def find_class(module, name: str, path: Path):
    from mininet.topo import Topo

    found = getattr(module, name, None)
    if found is None:
        found = (getattr(module, "topos", None) or {}).get(name)
    if found is None:
        known = sorted({k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, Topo)
                        and v is not Topo} | set(getattr(module, "topos", None) or {}))
        raise TopologyError(f"--topo: no topology {name!r} in {path} (it has: {', '.join(known) or 'none'})")
    return found


def load_topo(spec: str):
    """Build the Topo object a spec names (pure data: nothing is created in the kernel)."""
    from mininet.topo import Topo

    file, name, args, kwargs = split_spec(spec)
    path = resolve_file(file)
    factory = find_class(load_module(path), name, path)
    try:
        topo = factory(*args, **kwargs)
    except Exception as exc:
        raise TopologyError(f"--topo {spec!r}: {name}({_show_args(args, kwargs)}) failed: "
                            f"{type(exc).__name__}: {exc}") from None
    if not isinstance(topo, Topo):
        raise TopologyError(f"--topo {spec!r}: {name} did not make a mininet Topo")
    return topo


def _show_args(args: list, kwargs: dict) -> str:
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
