"""The skeleton's own contracts: the kinds registry and the CLI's command tree."""

import argparse

import pytest

from netemu.api import kinds
from netemu.api.errors import AlreadyExists, field_cause, invalid
from netemu.cli.main import Command, build_parser


def test_upstream_etcd_key_layout():
    svc = kinds.by_kind("v1", "Service")
    assert svc.key("default", "web") == "/registry/services/specs/default/web"
    assert kinds.by_kind("v1", "Node").key(None, "n1") == "/registry/minions/n1"
    deploy = kinds.by_kind("apps/v1", "Deployment")
    assert deploy.key("ns1", "d") == "/registry/deployments/ns1/d"
    assert deploy.list_prefix("ns1") == "/registry/deployments/ns1/"
    assert deploy.list_prefix() == "/registry/deployments/"


def test_kinds_are_unique_and_lookups_agree():
    seen = set()
    for r in kinds.RESOURCES:
        assert (r.group, r.kind) not in seen
        seen.add((r.group, r.kind))
        assert kinds.by_resource(r.group, r.version, r.resource) is r
        assert kinds.by_kind(r.api_version, r.kind) is r
    assert kinds.by_kind("v2", "Service") is None
    assert "discovery.k8s.io" in kinds.group_versions()


def test_status_errors_look_like_upstream():
    err = invalid("Service", "web", [field_cause("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive")])
    body = err.status()
    assert body["code"] == 422 and body["reason"] == "Invalid" and body["kind"] == "Status"
    assert body["message"].startswith('Service "web" is invalid: spec.ports[0].port:')
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].port"
    assert AlreadyExists("x").status()["code"] == 409


def test_cli_groups_commands_from_many_modules():
    ran = []
    cmds = [
        Command("proxy render", "render", lambda p: p.add_argument("--mode"), lambda a: ran.append(a.mode) or 0),
        Command("proxy cleanup", "cleanup", lambda p: None, lambda a: 0),
    ]
    parser = build_parser(cmds)
    args = parser.parse_args(["proxy", "render", "--mode", "iptables"])
    assert args._run(args) == 0 and ran == ["iptables"]
    with pytest.raises(SystemExit):
        parser.parse_args(["proxy"])


def test_lean_commands_load_only_their_module():
    from netemu.cli import main as cli_main

    paths = {c.path for c in cli_main._load_commands(["agent", "--node", "n1"])}
    assert paths == {"agent"}
    everything = {c.path for c in cli_main._load_commands(["proxy", "render"])}
    assert "agent" in everything and "proxy render" in everything
