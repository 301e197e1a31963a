"""Issue 12 through portctl: `watch`, `list --stats`, `list --holders`.

Done when `portctl watch` in one terminal shows bob's refused bind the
moment it happens, with the rule that refused it, and `portctl list
--holders` shows who holds each owned port.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, USERS, VENV_PYTHON, load_module, portctl, unload_module, user_bind

pytestmark = pytest.mark.usefixtures("users")


def start_watch(*args: str, file: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PORTOWNERS_FILE": str(file)}
    return subprocess.Popen(
        [VENV_PYTHON, "-m", "portctl", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def first_line(watch: subprocess.Popen[str], provoke, tries: int = 40) -> str:
    """provoke() until watch prints a line (it may not have joined yet)."""
    assert watch.stdout is not None
    for _ in range(tries):
        provoke()
        ready, _, _ = select.select([watch.stdout], [], [], 2.0)
        if ready:
            return watch.stdout.readline()
    raise AssertionError("portctl watch printed nothing")


@pytest.fixture
def watching(table: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for w in started:
        if w.poll() is None:
            w.kill()
            w.wait()


def test_watch_shows_bobs_refused_bind_with_the_rule(table: Path, watching):
    table.write_text("# web\ntcp/8080 po-alice\n")
    assert portctl("load", str(table)).returncode == 0
    watch = start_watch("--json", file=table)
    watching.append(watch)
    line = first_line(watch, lambda: user_bind("po-bob", 8080))
    event = json.loads(line)
    bob = USERS["po-bob"]
    assert (event["verdict"], event["proto"], event["port"]) == ("deny", "tcp", 8080)
    assert (event["uid"], event["user"], event["address"]) == (bob, "po-bob", "0.0.0.0")
    assert event["rule"]["user"] == "po-alice"
    assert event["file_line"] == f"{table}:2"
    # Grants only with --grants: alice's bind is not in this watch.
    assert user_bind("po-alice", 8080) == "OK"
    assert user_bind("po-bob", 8080, comm="evil\nforged") == "EACCES"
    assert watch.stdout is not None
    event = json.loads(watch.stdout.readline())
    assert (event["uid"], event["comm"]) == (bob, "evil\\x0aforged")
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=60) == 0


def test_watch_text_lines_and_grants(table: Path, watching):
    table.write_text("tcp/8080 po-alice\n")
    assert portctl("load", str(table)).returncode == 0
    watch = start_watch("--grants", file=table)
    watching.append(watch)
    line = first_line(watch, lambda: user_bind("po-alice", 8080))
    assert " granted tcp/8080 on 0.0.0.0 to po-alice " in line
    assert line.rstrip().endswith(f"by rule tcp/8080 po-alice ({table}:1)")
    assert user_bind("po-bob", 8080, comm="nc") == "EACCES"
    assert watch.stdout is not None
    line = watch.stdout.readline()
    assert " denied tcp/8080 on 0.0.0.0 to po-bob " in line and "comm 'nc'" in line
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=60) == 0


def test_watch_ends_when_the_module_goes(table: Path, watching):
    table.write_text("tcp/8080 po-alice\n")
    assert portctl("load", str(table)).returncode == 0
    watch = start_watch(file=table)
    watching.append(watch)
    first_line(watch, lambda: user_bind("po-bob", 8080))
    unload_module()
    try:
        _, err = watch.communicate(timeout=120)
        assert watch.returncode == 1
        assert "portowners module unloaded" in err
    finally:
        load_module()


def test_list_stats_counts_each_rules_binds(table: Path):
    table.write_text("tcp/8080 po-alice\nudp/5353 po-alice\n")
    assert portctl("load", str(table)).returncode == 0
    assert [user_bind("po-bob", 8080) for _ in range(2)] == ["EACCES"] * 2
    assert user_bind("po-alice", 8080) == "OK"
    rules = json.loads(portctl("list", "--stats", "--json").stdout)["rules"]
    counts = {(r["proto"], r["lo"]): (r["granted"], r["denied"]) for r in rules}
    assert counts == {("tcp", 8080): (1, 2), ("udp", 5353): (0, 0)}
    text = portctl("list", "--stats").stdout.splitlines()
    assert text[0].split()[-2:] == ["GRANTED", "DENIED"]
    assert [line.split()[-2:] for line in text[1:]] == [["1", "2"], ["0", "0"]]
    # Who binds how often is the administrator's to know, as the events.
    out = portctl("list", "--stats", uid=USERS["po-bob"])
    assert out.returncode == 1
    assert "reading the rules' counters needs CAP_NET_ADMIN" in out.stderr


HOLD = """
import socket, sys, time
kind, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
if kind == "tcp":
    s.listen()
print("bound", flush=True)
time.sleep(600)
"""


def hold(name: str, kind: str, port: int) -> subprocess.Popen[str]:
    uid = USERS[name]
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    proc = subprocess.Popen(
        [*argv, "/usr/bin/python3", "-c", HOLD, kind, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "bound\n"
    return proc


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_holders_shows_a_socket_bound_before_its_port_was_chowned_away(table: Path, holders):
    # bob holds udp/5300 and alice listens on tcp/8080, before any rule.
    holders.append(hold("po-bob", "udp", 5300))
    holders.append(hold("po-alice", "tcp", 8080))
    assert portctl("chown", "po-alice", "udp/5300", "tcp/8080", file=table).returncode == 0
    out = portctl("list", "--holders", "--json")
    assert out.returncode == 0, out.stderr
    rules = {(r["proto"], r["lo"]): r for r in json.loads(out.stdout)["rules"]}
    (bob,) = rules[("udp", 5300)]["holders"]
    assert (bob["uid"], bob["user"], bob["owner"], bob["state"]) == (
        USERS["po-bob"],
        "po-bob",
        False,
        "UNCONN",
    )
    assert [p["pid"] for p in bob["processes"]] == [holders[0].pid]
    (alice,) = rules[("tcp", 8080)]["holders"]
    assert (alice["uid"], alice["owner"], alice["state"], alice["address"]) == (
        USERS["po-alice"],
        True,
        "LISTEN",
        "0.0.0.0",
    )
    text = portctl("list", "--holders").stdout
    (line,) = [line for line in text.splitlines() if ":5300 " in line]
    assert "po-bob" in line and line.rstrip().endswith("not owner")
