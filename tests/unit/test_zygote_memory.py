"""The launcher template's memory cuts (issue 17), guarded without timing:

- every module a node's components import inside a function is one the template preloaded
  (a module imported after the fork is private memory in each of 300 processes at 100 nodes:
  measured, kube-proxy's start-up cleanup of the other modes alone was 1.5 MB per node);
- the template's heap and pymalloc holes are taken before it forks (procmem.plug_*): a child's
  allocations then come from fresh memory instead of copying shared pages.

Each check runs in a fresh interpreter: the template's state is what matters, not pytest's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Function-level imports of preloaded modules that no node component reaches, or one node: the
# CLI's renderer hooks (`netemu proxy render`), never called in a kube-proxy; the ingress
# controller's self-signed default certificate (cryptography), made on the node serving it.
NOT_IN_A_NODE = {"netemu.agent.proxy.iptables.normalize", "netemu.agent.proxy.nftables.listing"}
ONE_NODE = ("cryptography",)

LAZY_IMPORTS = textwrap.dedent("""
    import ast, importlib.util, json, sys
    from netemu.agent import zygote
    zygote.preimport("iptables,ipvs,nftables")
    have = set(sys.modules)
    late = {}
    for name in sorted(have):
        path = getattr(sys.modules[name], "__file__", None) or ""
        if not name.startswith("netemu") or not path.endswith(".py"):
            continue
        package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        for fn in ast.walk(ast.parse(open(path).read())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    wanted = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                        base = up + ("." + base if base else "")
                    wanted = [base]
                    for a in node.names:          # `from pkg import mod` names a module too
                        try:
                            if importlib.util.find_spec(f"{base}.{a.name}") is not None:
                                wanted.append(f"{base}.{a.name}")
                        except (ImportError, ValueError):
                            pass
                else:
                    continue
                for module in wanted:
                    try:
                        exists = importlib.util.find_spec(module) is not None
                    except (ImportError, ValueError):
                        exists = False
                    if module not in have and exists:
                        late.setdefault(module, []).append(f"{name}:{node.lineno}")
    print(json.dumps(late))
""")


def run_python(source: str) -> str:
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_function_level_import_of_the_node_components_is_preloaded_by_the_template():
    late = json.loads(run_python(LAZY_IMPORTS))
    unexpected = {m: where for m, where in late.items()
                  if m not in NOT_IN_A_NODE and m.split(".")[0] not in ONE_NODE}
    assert unexpected == {}, ("imported inside functions of preloaded modules but not by the "
                              f"template (zygote.preimport): {unexpected}")


def test_kube_proxys_start_up_cleanup_of_every_mode_imports_nothing_new():
    out = run_python(textwrap.dedent("""
        import sys
        from netemu.agent import zygote
        from netemu.agent.proxy import modes
        zygote.preimport("iptables")
        before = set(sys.modules)
        for mode in modes.with_hook("cleanup"):
            mode.hook("cleanup")
        print(sorted(set(sys.modules) - before))
    """))
    assert out.strip() == "[]"


def test_the_template_leaves_no_heap_hole_below_the_top():
    out = run_python(textwrap.dedent("""
        import ctypes, json
        import netemu.agent.components
        from netemu import procmem
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        def holes():
            info = libc.mallinfo2()
            return info.fordblks - info.keepcost        # free bytes below the top chunk
        before = holes()
        first = procmem.plug_heap_holes()
        after = holes()
        print(json.dumps({"before": before, "first": first, "after": after}))
    """))
    got = json.loads(out)
    assert got["first"] > 64 * 1024      # an interpreter that imported the agent has holes
    assert got["after"] < got["before"] / 8, got     # nearly all taken (what is left: < 16 B each)


def test_the_template_leaves_no_pymalloc_hole_in_an_old_pool():
    out = run_python(textwrap.dedent("""
        import json
        import netemu.agent.components
        from netemu import procmem
        before = procmem.pymalloc_free_blocks()
        procmem.plug_pymalloc_holes()
        print(json.dumps([before, procmem.pymalloc_free_blocks()]))
    """))
    before, after = (({int(k): v for k, v in d.items()}) for d in json.loads(out))
    assert sum(before.values()) > sum(after.values())
    pool = 16 * 1024                     # what is left is in pools the plugging itself opened
    assert all(count > pool // size // 2 for size, count in after.items()), after


RUNTIME_REGEXES = textwrap.dedent("""
    import ast, json, sys
    from netemu.agent import zygote
    zygote.preimport("iptables,ipvs,nftables")
    found = []
    calls = {"compile", "match", "search", "sub", "subn", "split", "findall", "finditer", "fullmatch"}
    for name in sorted(sys.modules):
        path = getattr(sys.modules[name], "__file__", None) or ""
        if not name.startswith("netemu") or not path.endswith(".py"):
            continue
        for fn in ast.walk(ast.parse(open(path).read())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                        and node.func.attr in calls and node.args
                        and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
                    found.append(f"{name}:{node.lineno}")
    print(json.dumps(sorted(set(found))))
""")


def test_no_preloaded_module_compiles_a_literal_pattern_at_call_time():
    """``re.search(r"...", text)`` inside a function compiles the pattern on its first call in
    each process (the regex compiler's pure-Python code then gets copied into every kube-proxy);
    a module-level ``re.compile`` runs once, in the template."""
    assert json.loads(run_python(RUNTIME_REGEXES)) == []


def test_kubeconfigs_are_parsed_by_libyaml_when_pyyaml_has_it(tmp_path):
    import yaml

    from netemu.client import kubeconfig
    expected = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    assert kubeconfig.SAFE_LOADER is expected
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig.render("https://10.0.0.1:6443", "t0k", ca_data=b"PEM"))
    access = kubeconfig.load(path)
    assert (access.server, access.token, access.ca_data) == ("https://10.0.0.1:6443", "t0k", b"PEM")
