"""`portctl chown`: OWNER before or after the PORTS (the brief writes both)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fakekernel import FakeKernel, complete, run_portctl

from portctl import cli, names
from portctl.model import Rule

run = run_portctl


EXPECTED = [Rule("tcp", 80, 80, uid=0), Rule("tcp", 443, 443, uid=0), Rule("udp", 53, 53, uid=0)]


@pytest.mark.parametrize(
    "words",
    [
        ["root", "tcp/80,443", "udp/53"],
        ["tcp/80,443", "udp/53", "root"],
        ["udp/53", "tcp/443", "tcp/80", "root"],
        ["root", "tcp/443", "udp/53", "tcp/80"],
    ],
    ids=["owner-first", "owner-last", "owner-last-mixed", "owner-first-mixed"],
)
def test_both_orders_give_the_same_table(
    kernel: FakeKernel, tmp_path: Path, words: list[str]
) -> None:
    r = run(tmp_path / "t", "chown", *words)
    assert r.exit_code == 0, r.output
    assert kernel.rules == EXPECTED


def test_the_briefs_spelling(kernel: FakeKernel, tmp_path: Path) -> None:
    r = run(tmp_path / "t", "chown", "udp/53", "0:0")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [Rule("udp", 53, 53, uid=0, gid=0)]
    assert (tmp_path / "t").read_text() == "udp/53 root:root\n"


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        (["tcp/80", "udp/53"], "missing OWNER"),
        (["root", "daemon", "tcp/80"], "more than one OWNER (`root`, `daemon`)"),
        (["tcp/80", "root", "udp/53"], "OWNER `root` stands between PORTS"),
        (["root"], "missing PORTS"),
        (["tcp/80", "no-such-user-xyz"], "no-such-user-xyz"),
        (["80/tcp", "root"], "tcp/80"),
    ],
)
def test_wrong_words_are_usage_errors(
    kernel: FakeKernel, tmp_path: Path, words: list[str], needle: str
) -> None:
    r = run(tmp_path / "t", "chown", *words)
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert kernel.calls == []
    assert not (tmp_path / "t").exists()


def test_a_word_that_is_both_ports_and_a_name_is_refused(
    kernel: FakeKernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passwd file can hold a name with a `/` that useradd would refuse.
    real = names.uid_of
    monkeypatch.setattr(names, "uid_of", lambda n: 4242 if n == "tcp/80" else real(n))
    r = run(tmp_path / "t", "chown", "tcp/80", "root")
    assert r.exit_code == 2, r.output
    assert "`tcp/80` is both PORTS and the name of a user or group" in r.output
    assert kernel.calls == []


def test_help_shows_both_orders() -> None:
    r = CliRunner().invoke(cli.cli, ["chown", "--help"])
    assert r.exit_code == 0
    assert "OWNER PORTS... | PORTS... OWNER" in r.output
    assert "`chown udp/53" in r.output


def test_completion_offers_ports_after_the_owner_and_owners_after_ports() -> None:
    assert "plain,udp/" in complete("portctl chown root u")
    assert "plain,root" in complete("portctl chown udp/53 ro")
