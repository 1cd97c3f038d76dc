"""The Service-behaviour table stays true to its suite: one row per test, each test named after
the upstream test in its docstring, the iptables column recorded for every row, and
docs/service-behaviours.md exactly what the recorded results render to."""

from __future__ import annotations

import re

from tests.e2e.service_behaviours import results

UPSTREAM_FILES = {"service.go", "loadbalancer.go", "conntrack.go", "networking.go", "kube_proxy.go", "(none)"}


def _slug(upstream: str) -> str:
    """test_ + the It text ("should ...") of an upstream test name, tags in [] left out."""
    text = re.sub(r"\[[^\]]*\]", "", upstream)
    it = text[text.index(" should ") + 1:] if " should " in text else text
    return "test_" + re.sub(r"[^a-z0-9]+", "_", it.lower()).strip("_")


def test_every_behaviour_is_named_after_its_upstream_test():
    known = results.inventory()
    assert len(known) >= 25, f"the suite mirrors {len(known)} upstream tests (at least 25 wanted)"
    names = [b.upstream for b in known]
    assert len(set(names)) == len(names), "two tests claim the same upstream test"
    for b in known:
        # "[netemu] ..." names a behaviour issue 19 asks for that has no upstream test (Upstream: (none))
        assert b.upstream.startswith("[sig-network] ") or (b.upstream.startswith("[netemu] ") and b.source == "(none)"), b
        assert b.source in UPSTREAM_FILES, f"{b.test_id}: 'Upstream: <file>' line missing or unknown: {b.source!r}"
        assert b.test_id.split("::")[1] == _slug(b.upstream), f"{b.test_id} is not named after {b.upstream!r}"


def test_recorded_rows_match_the_suite_and_the_doc_is_rendered_from_them():
    known = results.inventory()
    recorded = results.load()
    ids = {b.test_id for b in known}
    for mode, rows in recorded.items():
        assert set(rows) <= ids, f"{mode}: rows for tests that no longer exist: {sorted(set(rows) - ids)}"
        for key, row in rows.items():
            assert row["outcome"] in results.RECORDED, (mode, key, row)
            assert row["outcome"] == "pass" or row.get("reason"), f"{mode} {key}: a non-pass needs its reason"
    assert set(recorded.get("iptables", {})) == ids, (
        "iptables has no recorded outcome for: "
        f"{sorted(ids - set(recorded.get('iptables', {})))} (run scripts/service-behaviours as root)")
    assert results.DOC.read_text() == results.render(known, recorded, results.runs()), \
        "docs/service-behaviours.md is stale: scripts/service-behaviours --render"


def test_render_shows_each_outcome_with_its_reason():
    known = [results.Behaviour("test_a.py::test_x", "[sig-network] Services should x", "service.go"),
             results.Behaviour("test_a.py::test_y", "[sig-network] Services should y | z", "service.go")]
    text = results.render(known, {"ipvs": {"test_a.py::test_x": {"outcome": "n/a", "reason": "upstream skips it"}},
                                  "iptables": {"test_a.py::test_x": {"outcome": "pass"},
                                               "test_a.py::test_y": {"outcome": "xfail", "reason": "issue 18"}}})
    assert "| behaviour (upstream test) | from | iptables | ipvs |" in text
    assert "| [sig-network] Services should x | service.go | pass | n/a: upstream skips it |" in text
    assert "| [sig-network] Services should y \\| z | service.go | xfail: issue 18 | not run |" in text
    assert "- iptables: 1 pass, 1 xfail" in text and "- ipvs: 1 n/a, 1 not run" in text


def test_a_recorded_run_says_where_it_ran_and_a_later_write_keeps_it(tmp_path):
    run = {"where": "the lab VM, its vm_subset: 1 of 2 behaviours run", "date": "2026-12-06", "commit": "abc1234"}
    results.write("ipvs", {"test_a.py::test_x": {"outcome": "pass"}}, tmp_path, run=run)
    results.write("iptables", {"test_a.py::test_x": {"outcome": "pass"}}, tmp_path)
    assert results.runs(tmp_path) == {"ipvs": run}
    results.write("ipvs", {"test_a.py::test_x": {"outcome": "fail", "reason": "r"}}, tmp_path)   # no run given
    assert results.runs(tmp_path) == {"ipvs": run}
    assert results.load(tmp_path)["ipvs"] == {"test_a.py::test_x": {"outcome": "fail", "reason": "r"}}
    known = [results.Behaviour("test_a.py::test_x", "[sig-network] Services should x", "service.go")]
    text = results.render(known, results.load(tmp_path), results.runs(tmp_path))
    assert text.endswith("Recorded:\n\n- ipvs: the lab VM, its vm_subset: 1 of 2 behaviours run "
                         "(date 2026-12-06, commit abc1234)\n")
    assert "Recorded:" not in results.render(known, results.load(tmp_path))
