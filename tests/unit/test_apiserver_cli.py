"""``netemu apiserver`` argument checking: bad input is one clear line and exit code 2."""

from __future__ import annotations

import pytest

from netemu.cli import apiserver_cmd
from netemu.cli.main import UsageError, main


@pytest.mark.parametrize("text, expected", [("127.0.0.1:6443", ("127.0.0.1", 6443)),
                                            (":0", ("0.0.0.0", 0)), ("[::1]:8443", ("::1", 8443))])
def test_parse_listen(text, expected):
    assert apiserver_cmd.parse_listen(text) == expected


@pytest.mark.parametrize("text", ["6443", "host:", "host:port", "1.2.3.4:70000"])
def test_bad_listen(text):
    with pytest.raises(UsageError):
        apiserver_cmd.parse_listen(text)


def test_bad_flags_exit_2_before_starting(tmp_path, capsys):
    assert main(["apiserver", "--listen", "nope", "--state-dir", str(tmp_path)]) == 2
    assert "--listen 'nope'" in capsys.readouterr().err
    assert main(["apiserver", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path),
                 "--store", "mysql:x"]) == 2
    assert "unknown store" in capsys.readouterr().err
    assert not (tmp_path / "kubeconfig").exists()


def test_port_in_use_is_a_clear_error(tmp_path, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["apiserver", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path),
                     "--no-controllers"])
    assert code == 1
    assert "error" in capsys.readouterr().err
