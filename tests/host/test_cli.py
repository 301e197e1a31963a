"""The CLI against an in-memory fake of the kernel module."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakekernel import FakeKernel, complete, run_portctl

from portctl import cli
from portctl.model import Rule


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return tmp_path / "portowners"


run = run_portctl


def test_chown_changes_kernel_and_file(kernel: FakeKernel, table: Path) -> None:
    r = run(table, "chown", "root", "tcp/80,443", "udp/53")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [
        Rule("tcp", 80, 80, uid=0),
        Rule("tcp", 443, 443, uid=0),
        Rule("udp", 53, 53, uid=0),
    ]
    assert table.read_text() == "tcp/80,443 root\nudp/53 root\n"
    assert kernel.calls == ["replace"]


def test_chown_reassigns_in_one_replace(kernel: FakeKernel, table: Path) -> None:
    table.write_text("# mine\ntcp/8000-8099 :root  # dev\n")
    kernel.rules = [Rule("tcp", 8000, 8099, gid=0)]
    r = run(table, "chown", "0", "tcp/8050")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [
        Rule("tcp", 8000, 8049, gid=0),
        Rule("tcp", 8050, 8050, uid=0),
        Rule("tcp", 8051, 8099, gid=0),
    ]
    assert kernel.calls == ["replace"]
    assert table.read_text() == "# mine\ntcp/8000-8049,8051-8099 :root  # dev\ntcp/8050 root\n"


def test_release_splits(kernel: FakeKernel, table: Path) -> None:
    table.write_text("tcp/8000-8099 :root\nudp/53 root # dns\n")
    kernel.rules = [Rule("tcp", 8000, 8099, gid=0), Rule("udp", 53, 53, uid=0)]
    r = run(table, "release", "tcp/8050", "udp/53")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [Rule("tcp", 8000, 8049, gid=0), Rule("tcp", 8051, 8099, gid=0)]
    assert table.read_text() == "tcp/8000-8049,8051-8099 :root\n"


def test_runtime_leaves_file_alone(kernel: FakeKernel, table: Path) -> None:
    table.write_text("# untouched\n")
    assert run(table, "chown", "--runtime", "*", "tcp/631").exit_code == 0
    assert kernel.rules == [Rule("tcp", 631, 631, any_user=True)]
    assert table.read_text() == "# untouched\n"
    assert run(table, "release", "--runtime", "tcp/631").exit_code == 0
    assert kernel.rules == []


def test_per_command_file_and_env(
    kernel: FakeKernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    r = CliRunner().invoke(cli.cli, ["chown", "--file", str(other), "root", "tcp/1"])
    assert r.exit_code == 0, r.output
    assert other.read_text() == "tcp/1 root\n"
    env = tmp_path / "env"
    r = CliRunner().invoke(cli.cli, ["chown", "root", "tcp/2"], env={"PORTOWNERS_FILE": str(env)})
    assert r.exit_code == 0, r.output
    assert env.read_text() == "tcp/2 root\n"


def test_module_not_loaded_updates_file(kernel: FakeKernel, table: Path) -> None:
    kernel.loaded = False
    r = run(table, "chown", "root", "tcp/80")
    assert r.exit_code == 0
    assert "not loaded" in r.stderr and "takes effect when the module loads" in r.stderr
    assert table.read_text() == "tcp/80 root\n"
    r = run(table, "chown", "--runtime", "root", "tcp/81")
    assert r.exit_code == 1
    assert "modprobe portowners" in r.stderr
    assert "Traceback" not in r.output


def test_not_permitted_changes_nothing(kernel: FakeKernel, table: Path) -> None:
    table.write_text("tcp/80 root\n")
    kernel.privileged = False
    r = run(table, "chown", "nobody", "tcp/80")
    assert r.exit_code == 1
    assert "CAP_NET_ADMIN" in r.stderr
    assert table.read_text() == "tcp/80 root\n"


def test_bad_file_blocks_chown(kernel: FakeKernel, table: Path) -> None:
    table.write_text("tcp/80 root\n80/tcp root\ntcp/80 root\n")
    r = run(table, "chown", "root", "tcp/1")
    assert r.exit_code == 1
    assert f"{table}:2: " in r.stderr and f"{table}:3: " in r.stderr
    assert kernel.calls == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["chown", "no-such-user-xyz", "tcp/80"], "no-such-user-xyz"),
        (["chown", "root", "80/tcp"], "tcp/80"),
        (["chown", "root:no-such-group-xyz", "tcp/80"], "no-such-group-xyz"),
        (["release", "tcp/0"], "out of range"),
        (["check", "no-such-user-xyz", "tcp/80"], "no-such-user-xyz"),
        (["check", "root", "tcp/1-65535"], "at most"),
        (["chown", "root"], "PORTS"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2(kernel: FakeKernel, table: Path, args: list[str], needle: str) -> None:
    r = run(table, *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert kernel.calls == []


def test_list(kernel: FakeKernel, table: Path) -> None:
    kernel.rules = [
        Rule("tcp", 80, 80, uid=0),
        Rule("tcp", 8000, 8099, gid=0),
        Rule("udp", 53, 53, uid=0, gid=0),
        Rule("tcp", 631, 631, any_user=True),
    ]
    kernel.rules.sort()
    r = run(table, "list")
    assert r.exit_code == 0
    assert r.stdout.splitlines() == [
        "PROTO  PORTS      OWNER",
        "tcp    80         root",
        "tcp    631        *",
        "tcp    8000-8099  :root",
        "udp    53         root:root",
    ]
    r = run(table, "list", "--numeric")
    assert "udp    53         0:0" in r.stdout
    data = json.loads(run(table, "list", "--json").stdout)
    assert data["rules"][0] == {
        "proto": "tcp",
        "lo": 80,
        "hi": 80,
        "address": None,
        "owner": "root",
        "uid": 0,
        "user": "root",
        "gid": None,
        "group": None,
        "any_user": False,
    }
    assert [x["owner"] for x in data["rules"]] == ["root", "*", ":root", "root:root"]


def test_list_module_not_loaded(kernel: FakeKernel, table: Path) -> None:
    kernel.loaded = False
    r = run(table, "list")
    assert r.exit_code == 1
    assert r.stderr.startswith("portctl: ") and "modprobe portowners" in r.stderr


def test_load_all_or_nothing(kernel: FakeKernel, table: Path) -> None:
    kernel.rules = [Rule("tcp", 1, 1, uid=0)]
    table.write_text("tcp/80 root\nbogus line\nudp/x root\n")
    r = run(table, "load")
    assert r.exit_code == 1
    assert f"{table}:2: " in r.stderr and f"{table}:3: " in r.stderr
    assert kernel.rules == [Rule("tcp", 1, 1, uid=0)]
    assert kernel.calls == []
    table.write_text("tcp/80 root\n")
    r = run(table, "load")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [Rule("tcp", 80, 80, uid=0)]
    r = run(table, "load", str(table.parent / "missing"))
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_save_and_diff(kernel: FakeKernel, table: Path, tmp_path: Path) -> None:
    kernel.rules = [Rule("tcp", 80, 443, uid=0), Rule("udp", 53, 53, gid=0)]
    table.write_text("")
    os.chmod(table, 0o640)
    r = run(table, "save")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(table.stat().st_mode) == 0o640
    text = table.read_text()
    assert text.startswith("# ")
    assert run(table, "diff").exit_code == 0
    r = run(table, "diff")
    assert r.stdout == ""
    other = tmp_path / "other"
    other.write_text("tcp/80-443 root\ntcp/22 root\n")
    r = run(table, "diff", str(other))
    assert r.exit_code == 1
    assert r.stdout.splitlines() == ["+ tcp/22 root", "- udp/53 :root"]


def test_status(kernel: FakeKernel, table: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("portctl.hooks.TRACEFS", (tmp_path / "no-tracefs",))
    kernel.rules = [Rule("tcp", 80, 80, uid=0)]
    table.write_text("tcp/80 root\n")
    r = run(table, "status", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {
        "loaded": True,
        "version": "0.1.0-fake",
        "generation": 0,
        "rules": 1,
        "granted": 0,
        "denied": 0,
        "root_exempt": False,
        "file": str(table),
        "in_sync": True,
        "file_error": None,
        "hooks_armed": None,
        "events_dropped": 0,
    }
    assert "in sync" in run(table, "status").stdout
    tracefs = tmp_path / "tracing"
    tracefs.mkdir()
    (tracefs / "enabled_functions").write_text("")  # nothing hooked
    monkeypatch.setattr("portctl.hooks.TRACEFS", (tracefs,))
    r = run(table, "status")
    assert r.exit_code == 1 and "DISARMED" in r.stdout
    table.write_text("tcp/81 root\n")
    assert json.loads(run(table, "status", "--json").stdout)["in_sync"] is False
    kernel.loaded = False
    r = run(table, "status", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["loaded"] is False and data["in_sync"] is None
    assert "not loaded" in run(table, "status").stdout


def nobody() -> str:
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_name
    except KeyError:
        pytest.skip("no user nobody")


def test_check(kernel: FakeKernel, table: Path) -> None:
    import pwd

    nb = pwd.getpwnam(nobody())
    kernel.rules = [
        Rule("tcp", 80, 80, uid=0),
        Rule("tcp", 81, 81, uid=nb.pw_uid),
        Rule("tcp", 82, 82, gid=nb.pw_gid),
        Rule("tcp", 83, 83, any_user=True),
        Rule("tcp", 5000, 5000, uid=0),
    ]
    r = run(table, "check", "nobody", "tcp/81-83")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith("tcp/81: yes: nobody owns it")
    assert "group member" in r.stdout and "any user" in r.stdout
    r = run(table, "check", "nobody", "tcp/80")
    assert r.exit_code == 1
    assert r.stdout.startswith("tcp/80: no: owned by root")
    r = run(table, "check", "nobody", "tcp/100-102", "tcp/2000")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("tcp/100-102: no: no rule; port < ip_unprivileged_port_start")
    assert lines[1].startswith("tcp/2000: yes: no rule; unprivileged port")
    # root: low ports yes, owned by others: only with root_exempt
    assert run(table, "check", "root", "tcp/100").exit_code == 0
    assert run(table, "check", "root", "tcp/81").exit_code == 1
    kernel.root_exempt = True
    r = run(table, "check", "root", "tcp/81")
    assert r.exit_code == 0 and "root_exempt=1" in r.stdout
    data = json.loads(run(table, "check", "--json", "nobody", "tcp/80-81").stdout)
    assert data["user"] == "nobody" and data["uid"] == nb.pw_uid
    assert data["allowed"] is False
    assert [(x["lo"], x["allowed"], x["verdict"], x["reason"]) for x in data["results"]] == [
        (80, False, "deny", "owned"),
        (81, True, "grant", "owner"),
    ]
    assert data["results"][0]["rule"]["owner"] == "root"


def test_help_documents_exit_codes() -> None:
    r = CliRunner().invoke(cli.cli, ["--help"])
    assert r.exit_code == 0
    assert "Exit status" in r.stdout and "_PORTCTL_COMPLETE=bash_source" in r.stdout


def test_completion(kernel: FakeKernel) -> None:
    assert "plain,root" in complete("portctl chown ro")
    assert "plain,udp/" in complete("portctl release u")
    assert "plain,root:root" in complete("portctl chown root:ro")
