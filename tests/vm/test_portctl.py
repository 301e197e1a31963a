"""portctl end to end, through the real module, as an administrator uses it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import USERS, binds, load_module, portctl, unload_module, user_bind

pytestmark = pytest.mark.usefixtures("users")


def test_the_story(table: Path):
    assert user_bind("po-named", 53, "udp4") == "EACCES"
    assert portctl("chown", "po-named", "udp/53", file=table).returncode == 0
    assert user_bind("po-named", 53, "udp4") == "OK"
    # The brief's spelling: PORTS first, OWNER last.
    assert portctl("chown", "tcp/8080", "po-alice", file=table).returncode == 0
    assert user_bind("po-bob", 8080) == "EACCES"
    assert user_bind("po-alice", 8080) == "OK"
    # The change is in the file too, for the next boot.
    assert "udp/53" in table.read_text() and "po-alice" in table.read_text()
    assert portctl("diff", str(table)).returncode == 0
    listed = portctl("list")
    assert listed.returncode == 0
    assert [line.split() for line in listed.stdout.splitlines()[1:]] == [
        ["tcp", "8080", "po-alice"],
        ["udp", "53", "po-named"],
    ]
    rules = json.loads(portctl("list", "--json").stdout)["rules"]
    assert {(r["proto"], r["lo"], r["user"]) for r in rules} == {
        ("tcp", 8080, "po-alice"),
        ("udp", 53, "po-named"),
    }


def test_chown_reassigns_and_release_splits(table: Path):
    assert portctl("chown", ":po-staff", "tcp/8000-8099", file=table).returncode == 0
    assert user_bind("po-carol", 8042) == "OK"
    assert portctl("chown", "po-alice", "tcp/8042", file=table).returncode == 0
    assert user_bind("po-carol", 8042) == "EACCES"
    assert user_bind("po-alice", 8042) == "OK"
    assert portctl("release", "tcp/8050-8059", file=table).returncode == 0
    assert user_bind("po-bob", 8055) == "OK"
    assert user_bind("po-bob", 8060) == "EACCES"
    assert portctl("diff", str(table)).returncode == 0  # file and kernel agree


def test_check_agrees_with_real_binds(table: Path):
    table.write_text("tcp/80,8080 po-alice\ntcp/443,8443 :po-staff\n")
    assert portctl("load", str(table)).returncode == 0
    ports = [80, 81, 443, 8080, 8081, 8443]
    spec = "tcp/" + ",".join(map(str, ports))
    for name in ("po-alice", "po-bob", "po-carol", "root"):
        said = portctl("check", "--json", name, spec)
        assert said.returncode in (0, 1), said.stderr
        answer = {}
        for result in json.loads(said.stdout)["results"]:
            for port in range(result["lo"], result["hi"] + 1):
                answer[port] = result["allowed"]
        if name == "root":
            real = binds(None, [{"sock": "tcp4", "port": p} for p in ports])
        else:
            uid = USERS[name]
            groups = os.getgrouplist(name, uid)
            reqs = [{"sock": "tcp4", "port": p} for p in ports]
            real = binds(uid, reqs, gid=uid, groups=groups)
        assert [answer[p] for p in ports] == [r == "OK" for r in real], name
        assert (said.returncode == 0) == all(r == "OK" for r in real)


def test_rules_on_one_address_end_to_end(table: Path):
    for owner, ports in (("po-named", "udp/127.0.0.1:53"), ("po-alice", "udp/[::1]:53")):
        assert portctl("chown", owner, ports, file=table).returncode == 0
    assert portctl("chown", "po-bob", "udp/53", file=table).returncode == 0
    text = table.read_text()
    assert "udp/127.0.0.1:53 po-named" in text and "udp/[::1]:53 po-alice" in text
    assert user_bind("po-named", 53, "udp4", addr="127.0.0.1") == "OK"
    assert user_bind("po-alice", 53, "udp6", addr="::1") == "OK"
    assert user_bind("po-bob", 53, "udp4", addr="127.0.0.2") == "OK"  # every other address
    assert user_bind("po-bob", 53, "udp4", addr="127.0.0.1") == "EACCES"
    assert user_bind("po-bob", 53, "udp6", addr="::") == "EACCES"  # covers named's, alice's
    rules = json.loads(portctl("list", "--json").stdout)["rules"]
    assert {(r["address"], r["user"]) for r in rules} == {
        ("127.0.0.1", "po-named"),
        ("::1", "po-alice"),
        (None, "po-bob"),
    }
    said = json.loads(portctl("check", "--json", "po-named", "udp/127.0.0.1:53").stdout)
    assert [r["allowed"] for r in said["results"]] == [True]
    said = json.loads(portctl("check", "--json", "po-bob", "udp/53").stdout)
    assert [r["allowed"] for r in said["results"]] == [False]  # the wildcard bind
    # release is as exact as chown: the rule on 127.0.0.1 only.
    assert portctl("release", "udp/127.0.0.1:53", file=table).returncode == 0
    assert user_bind("po-bob", 53, "udp4", addr="127.0.0.1") == "OK"
    assert user_bind("po-named", 53, "udp4", addr="127.0.0.1") == "EACCES"
    assert portctl("diff", str(table)).returncode == 0


def test_load_of_a_bad_file_changes_nothing(table: Path, po):
    table.write_text("tcp/8080 po-alice\nudp/53 po-named\n")
    assert portctl("load", str(table)).returncode == 0
    before = po.table()  # (generation, rules)
    assert len(before[1]) == 2
    bad = table.with_name("bad")
    bad.write_text("tcp/80 po-alice\ntcp/80-90 po-bob\nudp/53 nosuchuser\n80/tcp po-bob\n")
    out = portctl("load", str(bad))
    assert out.returncode != 0
    assert f"{bad}:2:" in out.stderr and f"{bad}:3:" in out.stderr and f"{bad}:4:" in out.stderr
    assert "nosuchuser" in out.stderr and "tcp/80" in out.stderr
    assert po.table() == before  # the same generation, the same rules
    assert user_bind("po-bob", 8080) == "EACCES"
    # Not UTF-8, and a lone CR, which is no line break (tests/host/
    # test_config_fuzz.py throws many more at the parser, on the host).
    bad.write_bytes(b"tcp/80 po-alice\rtcp/81 po-bob\n\xff\xfe po-bob\n")
    out = portctl("load", str(bad))
    assert out.returncode == 1
    assert f"{bad}:1: too many fields" in out.stderr and f"{bad}:2: " in out.stderr
    assert "nothing changed" in out.stderr and "Traceback" not in out.stderr
    assert po.table() == before


def test_unprivileged_chown_refused_clearly(table: Path, po):
    before = table.read_text()
    bob = USERS["po-bob"]
    with_file = portctl("chown", "po-bob", "tcp/8080", uid=bob, file=table)
    assert with_file.returncode == 1
    assert "Permission denied (run as root)" in with_file.stderr  # the file is root's
    runtime = portctl("chown", "--runtime", "po-bob", "tcp/8080", uid=bob, file=table)
    assert runtime.returncode == 1
    assert "needs CAP_NET_ADMIN" in runtime.stderr  # and so is the kernel's table
    assert "Traceback" not in with_file.stderr + runtime.stderr
    assert table.read_text() == before
    assert po.rules() == []
    # Reading is for everyone.
    assert portctl("list", uid=bob).returncode == 0
    assert portctl("check", "po-bob", "tcp/8080", uid=bob).returncode == 0


def test_save_status_and_module_absent(table: Path):
    assert portctl("chown", "po-alice", "tcp/8080", "udp/5353", file=table).returncode == 0
    saved = table.with_name("saved")
    assert portctl("save", str(saved)).returncode == 0
    assert portctl("diff", str(saved)).returncode == 0
    status = json.loads(portctl("status", "--json", file=table).stdout)
    assert (status["loaded"], status["rules"], status["in_sync"]) == (True, 2, True)
    unload_module()
    try:
        out = portctl("chown", "po-bob", "tcp/9090", file=table)
        assert out.returncode == 0
        assert "not loaded" in out.stderr
        assert "tcp/9090" in table.read_text()
        status = portctl("status", "--json", file=table)
        assert status.returncode == 1
        assert json.loads(status.stdout)["loaded"] is False
        out = portctl("list")
        assert out.returncode == 1 and "modprobe portowners" in out.stderr
    finally:
        load_module()
    assert portctl("load", str(table)).returncode == 0
    assert user_bind("po-alice", 9090) == "EACCES"


def test_disarming_every_kprobe_leaves_the_hooks_working(table: Path):
    # The hooks are ftrace_ops, not kprobes: the system-wide kprobe switch
    # (which disarmed them before) does not reach them, and portctl status
    # reads them from tracefs.
    debugfs = Path("/sys/kernel/debug")
    if not (debugfs / "kprobes").exists():
        subprocess.run(["mount", "-t", "debugfs", "none", str(debugfs)], check=True)
    enabled = debugfs / "kprobes" / "enabled"
    assert portctl("chown", "po-alice", "tcp/8080", file=table).returncode == 0
    status = portctl("status", "--json", file=table)
    assert status.returncode == 0 and json.loads(status.stdout)["hooks_armed"] is True
    enabled.write_text("0")
    try:
        status = portctl("status", "--json", file=table)
        assert status.returncode == 0 and json.loads(status.stdout)["hooks_armed"] is True
        assert user_bind("po-bob", 8080) == "EACCES"
    finally:
        enabled.write_text("1")
