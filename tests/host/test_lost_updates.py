"""No lost updates: chown's read-modify-replace retries when another writer
changed the table between, and a dump that met a table swap is read again.

The kernel side (EXPECT_GENERATION, ESTALE, NLM_F_DUMP_INTR) is pinned in
tests/vm/test_hardening.py; here the fake kernel stages the races in order.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fakekernel import FakeKernel
from pyroute2.netlink import NLM_F_DUMP_INTR, NLM_F_MULTI

from portctl import cli, netlink
from portctl.model import Rule


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    k = FakeKernel()
    monkeypatch.setattr(cli, "client_factory", k.factory)
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    monkeypatch.delenv("PORTOWNERS_FILE", raising=False)
    return k


def run(table: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.cli, ["--file", str(table), *args], prog_name="portctl")


def intruder(times: int) -> Any:
    """Another writer that adds udp/5001, udp/5002, ... after each of the
    first `times` reads (as a second portctl would: a new generation each)."""
    done = 0

    def change(k: FakeKernel) -> bool:
        nonlocal done
        done += 1
        k.rules = sorted([*k.rules, Rule("udp", 5000 + done, 5000 + done, uid=7)])
        k.generation += 1
        return done < times

    return change


@pytest.mark.parametrize("runtime", [True, False])
def test_chown_retries_from_the_table_another_writer_changed(
    kernel: FakeKernel, tmp_path: Path, runtime: bool
) -> None:
    kernel.rules = [Rule("tcp", 22, 22, uid=0)]
    kernel.intruder = intruder(cli.REPLACE_TRIES - 1)
    args = ["chown", *(["--runtime"] if runtime else []), "0", "tcp/80"]
    r = run(tmp_path / "portowners", *args)
    assert r.exit_code == 0, r.output
    # Every other writer's change survives, and so does ours.
    others = [Rule("udp", 5000 + i, 5000 + i, uid=7) for i in range(1, cli.REPLACE_TRIES)]
    assert kernel.rules == sorted([Rule("tcp", 22, 22, uid=0), Rule("tcp", 80, 80, uid=0), *others])
    assert kernel.calls == ["replace"] * cli.REPLACE_TRIES  # refused 4 times, then done


def test_chown_gives_up_clearly_when_the_table_keeps_changing(
    kernel: FakeKernel, tmp_path: Path
) -> None:
    table = tmp_path / "portowners"
    table.write_text("tcp/22 root\n")
    kernel.rules = [Rule("tcp", 22, 22, uid=0)]
    kernel.intruder = intruder(1000)
    r = run(table, "chown", "0", "tcp/80")
    assert r.exit_code == 1
    assert r.output == (
        "portctl: another writer changed the port table while portctl was changing it, "
        f"{cli.REPLACE_TRIES} times in a row: gave up; nothing changed\n"
    )
    assert kernel.calls == ["replace"] * cli.REPLACE_TRIES
    assert Rule("tcp", 80, 80, uid=0) not in kernel.rules
    assert table.read_text() == "tcp/22 root\n"  # the file follows the kernel: unchanged
    r = run(table, "chown", "--runtime", "0", "tcp/80")
    assert r.exit_code == 1
    assert "times in a row: gave up" in r.output
    assert "Traceback" not in r.output


def test_load_stays_unconditional(kernel: FakeKernel, tmp_path: Path) -> None:
    # `portctl load` replaces the table with the file's, whatever it was.
    table = tmp_path / "portowners"
    table.write_text("tcp/80 root\n")
    kernel.intruder = intruder(1000)
    assert run(table, "load").exit_code == 0
    assert kernel.rules == [Rule("tcp", 80, 80, uid=0)]


Msg = tuple[int, bytes]  # a dump message as RawChannel.dump() gives it


def msg(generation: int, rules: list[Rule], flags: int = NLM_F_MULTI) -> Msg:
    """A GET_RULES reply message, bytes as the kernel sends them."""
    body = netlink._GENLHDR.pack(netlink.CMD_GET_RULES, netlink.GENL_VERSION, 0)
    body += struct.pack("=HHQ", 12, netlink.A_GENERATION, generation)
    return flags, netlink.frame(netlink.encode_rules(rules, out=bytearray(body)), 0x1D, 1, flags)


DONE: Msg = (NLM_F_MULTI, b"")


def client_with_dumps(dumps: list[list[Msg]]) -> netlink.Client:
    client = netlink.Client.__new__(netlink.Client)  # no socket
    replies = iter(dumps)

    def rules_dump() -> list[Msg]:
        return [*next(replies), DONE]

    client._rules_dump = rules_dump  # type: ignore[method-assign]
    return client


A, B = Rule("tcp", 80, 80, uid=1), Rule("tcp", 81, 81, uid=2)


def test_dump_flagged_interrupted_is_read_again() -> None:
    # One generation throughout, but flagged: the table shrank under the
    # dump, which ended early. It must not pass for the whole table.
    client = client_with_dumps(
        [
            [msg(7, [A]), msg(7, [], NLM_F_MULTI | NLM_F_DUMP_INTR)],
            [msg(8, [A, B])],
        ]
    )
    assert client.table() == (8, [A, B])


def test_dump_mixing_generations_is_read_again() -> None:
    client = client_with_dumps([[msg(7, [A]), msg(8, [B])], [msg(8, [B])]])
    assert client.table() == (8, [B])


def test_dump_that_never_settles_fails_clearly() -> None:
    flagged = [msg(7, [A], NLM_F_MULTI | NLM_F_DUMP_INTR)]
    client = client_with_dumps([flagged] * netlink.DUMP_TRIES)
    with pytest.raises(netlink.PortownersError, match="kept changing while it was read"):
        client.table()


def test_an_older_module_is_named_not_a_bare_kernel_message() -> None:
    import errno
    import types

    from pyroute2.netlink.exceptions import NetlinkError

    class OldModule:
        """A module from before EXPECT_GENERATION: its policy refuses it."""

        def request(self, body: bytes | bytearray, family: int) -> None:
            expect = struct.pack("=HH", 12, netlink.A_EXPECT_GENERATION)
            if expect in body:
                raise NetlinkError(errno.EINVAL, "Unknown attribute type")

        def close(self) -> None:
            pass

    client = netlink.Client.__new__(netlink.Client)  # no socket
    client.sock = types.SimpleNamespace(prid=0x1D)
    client.channel = OldModule  # type: ignore[assignment,method-assign]
    with pytest.raises(netlink.PortownersError, match="module is older than this portctl"):
        client.replace([A], expect_generation=3)
    client.replace([A])  # unconditional: fine with any module
