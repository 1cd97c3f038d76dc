"""The one manifest loader (netemu/api/manifests.py) behind netemu apply/delete -f and netemu
proxy render -f: files, directories (subdirectories only when asked, as kubectl -R), stdin,
Lists, and where each object came from."""

from __future__ import annotations

import io

import pytest

from netemu.api.manifests import ManifestError, load
from netemu.cli.apply_get_delete_cmd import load_manifests


def pod(name: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n"


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a.yaml").write_text(pod("a") + "---\n" + pod("a2"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.YML").write_text(pod("b"))
    (tmp_path / "sub" / "c.json").write_text('{\n\t"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}\n}')
    return tmp_path


def names(objs) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_a_directory_is_read_alone_unless_recursive(tree):
    assert names(o for _, o in load([tree]).objects) == ["a", "a2"]
    loaded = load([tree], recursive=True)
    assert names(o for _, o in loaded.objects) == ["a", "a2", "b", "c"]     # JSON with tabs: json, not YAML
    assert [p.name for p in loaded.files] == ["a.yaml", "b.YML", "c.json"]
    assert names(load_manifests(str(tree))) == ["a", "a2"]
    assert names(load_manifests(str(tree), recursive=True)) == ["a", "a2", "b", "c"]


def test_lists_are_flattened_and_every_object_says_where_it_came_from(tmp_path):
    f = tmp_path / "list.yaml"
    f.write_text("kind: PodList\nitems:\n- " + pod("x").replace("\n", "\n  ") + "\n---\n- 1\n- 2\n")
    loaded = load([f])
    assert [(w, o["metadata"]["name"]) for w, o in loaded.objects] == [(f"{f} document 1 items[0]", "x")]
    assert loaded.problems == [f"{f} document 2: not an object (a list)"]


def test_stdin_and_errors_name_the_source(tmp_path):
    assert names(o for _, o in load(["-"], stdin=io.StringIO(pod("s"))).objects) == ["s"]
    assert names(o for _, o in load(["-"], stdin=pod("t")).objects) == ["t"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="empty: no \\*.yaml, \\*.yml or \\*.json files in this directory or below"):
        load([tmp_path / "empty"], recursive=True)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ManifestError, match="bad.json: invalid JSON at line 1 column 2"):
        load([tmp_path / "bad.json"])
