"""Rules on one local address (`tcp/127.0.0.1:53`): spelling, the file, the
CLI against the fake kernel, and the netlink attributes (issue 10, part 2).

The semantics (docs/design.md): a rule on an address decides binds to that
address and takes precedence over the rule on every address; a wildcard bind
is granted only to someone every rule of the port in its scope grants.
"""

from __future__ import annotations

import errno
import json
import pwd
from pathlib import Path
from typing import Any

import pytest
from fakekernel import FakeKernel, run_portctl
from pyroute2.netlink.exceptions import NetlinkError

from portctl import config, netlink
from portctl.model import PortRange, Rule
from portctl.names import Owner
from portctl.ports import PortsError, parse_ports

run = run_portctl


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return tmp_path / "portowners"


def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")


# Spelling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ranges"),
    [
        ("tcp/127.0.0.1:53", [PortRange("tcp", 53, 53, "127.0.0.1")]),
        ("udp/[::1]:53", [PortRange("udp", 53, 53, "::1")]),
        (
            "tcp/192.0.2.10:80,443",
            [PortRange("tcp", 80, 80, "192.0.2.10"), PortRange("tcp", 443, 443, "192.0.2.10")],
        ),
        ("tcp/192.0.2.10:8000-8099", [PortRange("tcp", 8000, 8099, "192.0.2.10")]),
        # An IPv4-mapped IPv6 address is its IPv4 address.
        ("udp/[::ffff:127.0.0.1]:53", [PortRange("udp", 53, 53, "127.0.0.1")]),
        # IPv6 in its canonical (compressed, lowercase) text.
        ("sctp/[2001:DB8:0:0::1]:9", [PortRange("sctp", 9, 9, "2001:db8::1")]),
        # An IPv4 address in brackets is allowed, and written without.
        ("tcp/[127.0.0.1]:1", [PortRange("tcp", 1, 1, "127.0.0.1")]),
        ("tcp/53", [PortRange("tcp", 53, 53)]),
    ],
)
def test_addresses_are_parsed_to_their_canonical_text(spec: str, ranges: list[PortRange]) -> None:
    assert parse_ports(spec) == ranges


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "tcp/0.0.0.0:53",
            "`tcp/0.0.0.0:53`: 0.0.0.0 means every address: "
            "write the rule without an address, as tcp/53",
        ),
        ("tcp/[::]:53", "`tcp/[::]:53`: :: means every address"),
        ("udp/[::ffff:0.0.0.0]:53", "::ffff:0.0.0.0 means every address"),
        (
            "tcp/[fe80::1%eth0]:80",
            "`tcp/[fe80::1%eth0]:80`: zone ids (`%eth0`) are not supported: a rule holds "
            "on an address whatever the interface; write tcp/[fe80::1]:80",
        ),
        ("tcp/fe80::1%eth0:80", "zone ids (`%eth0`) are not supported"),
        (
            "tcp/2001:db8::1:80",
            "`tcp/2001:db8::1:80`: an IPv6 address goes in brackets, then `:` and the "
            "ports: write e.g. tcp/[2001:db8::1]:80",
        ),
        ("udp/::1", "an IPv6 address goes in brackets"),
        (
            "tcp/localhost:80",
            "`tcp/localhost:80`: bad address `localhost`: write an IPv4 address "
            "(127.0.0.1) or an IPv6 one in brackets ([::1])",
        ),
        ("tcp/1.2.3:80", "bad address `1.2.3`"),
        ("tcp/256.0.0.1:80", "bad address `256.0.0.1`"),
        ("tcp/127.0.0.1", "no ports after the address: write tcp/127.0.0.1:PORTS"),
        ("tcp/127.0.0.1:", "no ports after `tcp/127.0.0.1:`"),
        ("tcp/[::1]", "the ports come after the address and a `:`: write tcp/[::1]:PORTS"),
        ("tcp/[::1]53", "the ports come after the address"),
        ("tcp/[::1:53", "no `]` after the address `[::1:53`"),
        ("tcp/:53", "no address before `:`"),
        ("tcp/127.0.0.1:0", "out of range"),
        ("127.0.0.1:53", "has no protocol: write tcp/127.0.0.1:53"),
    ],
)
def test_bad_addresses_are_named(spec: str, message: str) -> None:
    with pytest.raises(PortsError) as info:
        parse_ports(spec)
    assert message in str(info.value)


def test_wildcards_are_binds_to_ask_about_not_rules() -> None:
    assert parse_ports("tcp/0.0.0.0:53", wildcard=True) == [PortRange("tcp", 53, 53, "0.0.0.0")]
    assert parse_ports("tcp/[::]:53", wildcard=True) == [PortRange("tcp", 53, 53, "::")]
    with pytest.raises(PortsError, match="zone ids"):
        parse_ports("tcp/[fe80::1%1]:53", wildcard=True)


# Overlaps -----------------------------------------------------------------------


def test_overlaps_are_per_protocol_and_address() -> None:
    wide = Rule("tcp", 50, 60, uid=1)
    assert wide.overlaps(Rule("tcp", 55, 55, uid=2))
    assert not wide.overlaps(Rule("tcp", 55, 55, uid=2, addr="127.0.0.1"))
    on = Rule("tcp", 53, 53, uid=1, addr="127.0.0.1")
    assert on.overlaps(Rule("tcp", 50, 60, uid=2, addr="127.0.0.1"))
    assert not on.overlaps(Rule("tcp", 50, 60, uid=2, addr="127.0.0.2"))
    assert not on.overlaps(Rule("udp", 53, 53, uid=2, addr="127.0.0.1"))


def errors_of(text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "F")
    return info.value.messages


def test_an_address_rule_may_overlap_the_rule_on_every_address() -> None:
    rules = config.parse(
        "tcp/53 1000\ntcp/127.0.0.1:53 root\ntcp/[::1]:1-100 :root\n"
        "tcp/127.0.0.2:53 *\nudp/127.0.0.1:53 root\n",
        "F",
    )
    assert rules == [
        Rule("tcp", 53, 53, uid=1000),
        Rule("tcp", 53, 53, uid=0, addr="127.0.0.1"),
        Rule("tcp", 53, 53, any_user=True, addr="127.0.0.2"),
        Rule("tcp", 1, 100, gid=0, addr="::1"),
        Rule("udp", 53, 53, uid=0, addr="127.0.0.1"),
    ]


def test_overlaps_on_one_address_name_both_lines() -> None:
    assert errors_of("tcp/127.0.0.1:1-100 root\n# c\ntcp/127.0.0.1:50 :root\ntcp/50 root\n") == [
        "F:3: tcp/127.0.0.1:50 overlaps tcp/127.0.0.1:1-100 on line 1"
    ]
    # The same address in two spellings is the same address.
    assert errors_of("udp/127.0.0.1:53 root\nudp/[::ffff:127.0.0.1]:53 root\n") == [
        "F:2: udp/127.0.0.1:53 is also given on line 1"
    ]
    assert errors_of("udp/[::1]:53 root\nudp/[0::1]:53 root\n") == [
        "F:2: udp/[::1]:53 is also given on line 1"
    ]


def test_bad_addresses_in_the_file_are_file_line_messages() -> None:
    errs = errors_of(
        "tcp/53 root\ntcp/0.0.0.0:53 root\nudp/[fe80::1%eth0]:53 root\n"
        "tcp/::1:80 root\ntcp/www.example:80 root\n"
    )
    assert [e.split(": ", 1)[0] for e in errs] == ["F:2", "F:3", "F:4", "F:5"]
    assert "0.0.0.0 means every address" in errs[0]
    assert "zone ids" in errs[1]
    assert "brackets" in errs[2]
    assert "bad address `www.example`" in errs[3]


# Formatting and editing -------------------------------------------------------------


def test_format_keeps_the_address() -> None:
    rules = [
        Rule("tcp", 53, 53, uid=0, addr="127.0.0.1"),
        Rule("tcp", 80, 80, uid=0, addr="127.0.0.1"),
        Rule("tcp", 53, 53, gid=0),
        Rule("udp", 53, 53, uid=0, addr="::1"),
        Rule("udp", 53, 53, uid=0, addr="10.0.0.2"),
        Rule("udp", 53, 53, uid=0, addr="9.0.0.1"),
    ]
    assert config.format_lines(rules) == [
        "tcp/53 :root",
        "tcp/127.0.0.1:53,80 root",
        "udp/9.0.0.1:53 root",  # addresses by value: 9 before 10, IPv4 before IPv6
        "udp/10.0.0.2:53 root",
        "udp/[::1]:53 root",
    ]
    assert config.parse(config.format(rules)) == config.parse("\n".join(config.format_lines(rules)))


def test_release_is_scope_exact() -> None:
    text = "tcp/53,54 root\ntcp/127.0.0.1:53,54 root  # lo\nudp/[::1]:53 root\n"
    doc = config.parse_document(text)
    doc.release(parse_ports("tcp/53"))
    assert doc.text() == "tcp/54 root\ntcp/127.0.0.1:53,54 root  # lo\nudp/[::1]:53 root\n"
    doc.release(parse_ports("tcp/127.0.0.1:54") + parse_ports("udp/[::1]:53"))
    assert doc.text() == "tcp/54 root\ntcp/127.0.0.1:53 root  # lo\n"
    assert not doc.release(parse_ports("tcp/127.0.0.2:53"))


def test_chown_is_scope_exact() -> None:
    doc = config.parse_document("tcp/53 root\ntcp/127.0.0.1:53 root\n")
    doc.chown(parse_ports("tcp/53"), Owner(gid=0))
    assert doc.text() == "tcp/127.0.0.1:53 root\ntcp/53 :root\n"
    doc.chown(parse_ports("tcp/[::1]:53"), Owner(any_user=True))
    assert doc.text() == "tcp/127.0.0.1:53 root\ntcp/53 :root\ntcp/[::1]:53 *\n"
    doc.chown(parse_ports("tcp/127.0.0.1:53"), Owner(uid=0))  # already so
    assert doc.text() == "tcp/127.0.0.1:53 root\ntcp/53 :root\ntcp/[::1]:53 *\n"


def test_diff_lines_carry_the_address() -> None:
    wanted = [Rule("tcp", 53, 53, uid=0, addr="127.0.0.1"), Rule("tcp", 53, 53, uid=1)]
    live = [Rule("tcp", 53, 53, uid=1)]
    assert config.diff_lines(wanted, live, numeric=True) == ["+ tcp/127.0.0.1:53 0"]
    assert config.diff_lines(live, wanted, numeric=True) == ["- tcp/127.0.0.1:53 0"]
    assert config.diff_lines(wanted, wanted) == []


# The CLI --------------------------------------------------------------------------------


def test_chown_and_release_with_an_address(kernel: FakeKernel, table: Path) -> None:
    table.write_text("tcp/53 root\n")
    kernel.rules = [Rule("tcp", 53, 53, uid=0)]
    r = run(table, "chown", "tcp/127.0.0.1:53,80", "udp/[::1]:53", ":0")
    assert r.exit_code == 0, r.output
    assert kernel.rules == [
        Rule("tcp", 53, 53, uid=0),
        Rule("tcp", 53, 53, gid=0, addr="127.0.0.1"),
        Rule("tcp", 80, 80, gid=0, addr="127.0.0.1"),
        Rule("udp", 53, 53, gid=0, addr="::1"),
    ]
    assert table.read_text() == "tcp/53 root\ntcp/127.0.0.1:53,80 :root\nudp/[::1]:53 :root\n"
    # chown of the port on every address leaves the address rules alone
    assert run(table, "chown", "1", "tcp/53").exit_code == 0
    assert Rule("tcp", 53, 53, uid=1) in kernel.rules
    assert Rule("tcp", 53, 53, gid=0, addr="127.0.0.1") in kernel.rules
    # release tcp/53: the rule on every address only
    assert run(table, "release", "tcp/53").exit_code == 0
    assert [r.text() for r in kernel.rules] == [
        "tcp/127.0.0.1:53",
        "tcp/127.0.0.1:80",
        "udp/[::1]:53",
    ]
    assert table.read_text() == "tcp/127.0.0.1:53,80 :root\nudp/[::1]:53 :root\n"
    # release on an address: that address's rules only
    assert run(table, "release", "--runtime", "tcp/127.0.0.1:80").exit_code == 0
    assert [r.text() for r in kernel.rules] == ["tcp/127.0.0.1:53", "udp/[::1]:53"]
    assert run(table, "release", "udp/[::ffff:127.0.0.1]:53").exit_code == 0
    assert [r.text() for r in kernel.rules] == ["tcp/127.0.0.1:53", "udp/[::1]:53"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["chown", "root", "tcp/0.0.0.0:53"], "0.0.0.0 means every address"),
        (["release", "udp/[::]:53"], ":: means every address"),
        (["chown", "root", "tcp/[fe80::1%eth0]:22"], "zone ids (`%eth0`) are not supported"),
        (["release", "tcp/::1:53"], "an IPv6 address goes in brackets"),
        (["check", "root", "tcp/[fe80::1%2]:22"], "zone ids"),
    ],
)
def test_bad_addresses_are_usage_errors(
    kernel: FakeKernel, table: Path, args: list[str], needle: str
) -> None:
    r = run(table, *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert kernel.calls == [] and kernel.checks == []


def test_list_shows_the_address(kernel: FakeKernel, table: Path) -> None:
    kernel.rules = [
        Rule("tcp", 53, 53, uid=0),
        Rule("tcp", 53, 53, uid=0, addr="127.0.0.1"),
        Rule("udp", 53, 54, any_user=True, addr="::1"),
    ]
    r = run(table, "list")
    assert r.stdout.splitlines() == [
        "PROTO  PORTS         OWNER",
        "tcp    53            root",
        "tcp    127.0.0.1:53  root",
        "udp    [::1]:53-54   *",
    ]
    data = json.loads(run(table, "list", "--json").stdout)["rules"]
    assert [(x["proto"], x["lo"], x["hi"], x["address"]) for x in data] == [
        ("tcp", 53, 53, None),
        ("tcp", 53, 53, "127.0.0.1"),
        ("udp", 53, 54, "::1"),
    ]


def test_save_load_and_diff_carry_the_address(
    kernel: FakeKernel, table: Path, tmp_path: Path
) -> None:
    kernel.rules = [Rule("tcp", 53, 53, uid=0), Rule("tcp", 53, 53, uid=0, addr="127.0.0.1")]
    assert run(table, "save").exit_code == 0
    assert "tcp/127.0.0.1:53  root\n" in table.read_text()
    assert run(table, "diff").exit_code == 0
    kernel.rules = [Rule("tcp", 53, 53, uid=0)]
    r = run(table, "diff")
    assert (r.exit_code, r.stdout) == (1, "+ tcp/127.0.0.1:53 root\n")
    assert run(table, "load").exit_code == 0
    assert kernel.rules == [
        Rule("tcp", 53, 53, uid=0),
        Rule("tcp", 53, 53, uid=0, addr="127.0.0.1"),
    ]


def answers(kernel: FakeKernel, table: Path, user: str, *ports: str) -> list[str]:
    r = run(table, "check", user, *ports)
    assert r.exit_code in (0, 1) and "Traceback" not in r.output, r.output
    return r.stdout.splitlines()


def test_check_a_bind_to_an_address(kernel: FakeKernel, table: Path) -> None:
    nb = nobody()
    kernel.rules = [
        Rule("tcp", 53, 53, uid=0),
        Rule("tcp", 53, 53, uid=nb.pw_uid, addr="127.0.0.1"),
    ]
    # The rule on the address decides there, over the rule on every address.
    mine = "tcp/127.0.0.1:53: yes: nobody owns it (tcp/127.0.0.1:53 nobody)"
    assert answers(kernel, table, "nobody", "tcp/127.0.0.1:53") == [mine]
    assert answers(kernel, table, "nobody", "tcp/[::ffff:127.0.0.1]:53") == [mine]
    # Elsewhere, the rule on every address.
    assert answers(kernel, table, "nobody", "tcp/127.0.0.2:53", "tcp/[::1]:53") == [
        "tcp/127.0.0.2:53: no: owned by root (tcp/53 root)",
        "tcp/[::1]:53: no: owned by root (tcp/53 root)",
    ]
    assert kernel.checks[-2:] == [("tcp", 53, "127.0.0.2"), ("tcp", 53, "::1")]
    # No rule on the address nor on every address: the kernel's default.
    assert answers(kernel, table, "nobody", "udp/127.0.0.1:53") == [
        "udp/127.0.0.1:53: no: no rule; port < ip_unprivileged_port_start=1024 "
        "needs CAP_NET_BIND_SERVICE"
    ]


def test_check_a_wildcard_bind_needs_every_rule_in_its_scope(
    kernel: FakeKernel, table: Path
) -> None:
    nb = nobody()
    kernel.rules = [
        Rule("tcp", 53, 53, uid=nb.pw_uid),
        Rule("tcp", 53, 53, uid=0, addr="::1"),
        Rule("tcp", 80, 80, uid=nb.pw_uid, addr="127.0.0.1"),
        Rule("tcp", 80, 80, uid=nb.pw_uid, addr="::1"),
    ]
    # No address (as ::): every rule of the port, the IPv6 one refuses.
    assert answers(kernel, table, "nobody", "tcp/53", "tcp/[::]:53") == [
        "tcp/53: no: owned by root on ::1, which a bind to every address covers "
        "(tcp/[::1]:53 root)",
        "tcp/[::]:53: no: owned by root on ::1, which a bind to every address covers "
        "(tcp/[::1]:53 root)",
    ]
    assert kernel.checks[-2:] == [("tcp", 53, ""), ("tcp", 53, "::")]
    # 0.0.0.0: the rule on every address and the IPv4 ones only.
    assert answers(kernel, table, "nobody", "tcp/0.0.0.0:53") == [
        "tcp/0.0.0.0:53: yes: nobody owns it (tcp/53 nobody)"
    ]
    # Every rule in scope grants.
    assert answers(kernel, table, "nobody", "tcp/80") == [
        "tcp/80: yes: nobody owns it (tcp/127.0.0.1:80 nobody)"
    ]
    data = json.loads(run(table, "check", "--json", "nobody", "tcp/[::1]:53").stdout)
    (result,) = data["results"]
    assert (result["address"], result["allowed"], result["rule"]["address"]) == (
        "::1",
        False,
        "::1",
    )
    data = json.loads(run(table, "check", "--json", "nobody", "tcp/53").stdout)
    assert data["results"][0]["address"] is None


# Netlink ----------------------------------------------------------------------------------


class Recorder:
    """Client._send without a kernel: keeps what was sent, decoded back by
    pyroute2, and answers with the replies given."""

    def __init__(self, replies: list[Any]) -> None:
        self.sent: list[Any] = []
        self.replies = replies

    def __call__(self, msg: Any, flags: int = 0) -> list[Any]:
        msg.encode()
        back = netlink.pomsg(msg.data)
        back.decode()
        self.sent.append(back)
        return self.replies


def reply(cmd: int, attrs: list[list[Any]]) -> Any:
    msg = netlink.pomsg()
    msg["cmd"] = cmd
    msg["version"] = netlink.GENL_VERSION
    msg["attrs"] = attrs
    msg.encode()
    back = netlink.pomsg(msg.data)
    back.decode()
    return back


def client(send: Recorder) -> netlink.Client:
    c = netlink.Client.__new__(netlink.Client)  # no kernel
    c._send = send  # type: ignore[method-assign]
    return c


@pytest.mark.parametrize(
    ("addr", "sent"),
    [
        ("127.0.0.1", bytes([127, 0, 0, 1])),
        ("0.0.0.0", bytes(4)),
        ("::", bytes(16)),
        ("2001:db8::1", bytes.fromhex("20010db8" + "00" * 11 + "01")),
        ("", None),
    ],
)
def test_check_sends_the_address_and_reads_the_rules(addr: str, sent: bytes | None) -> None:
    rule = Rule("tcp", 53, 53, uid=7, addr="192.0.2.1")
    answer = reply(
        netlink.CMD_CHECK,
        [["PORTOWNERS_A_VERDICT", 2], ["PORTOWNERS_A_RULE", netlink.rule_attrs(rule)]],
    )
    rec = Recorder([answer])
    result = client(rec).check(1000, 1000, [], "tcp", 53, addr)
    assert result == netlink.CheckResult("deny", rule)
    (msg,) = rec.sent
    assert msg["version"] == netlink.GENL_VERSION >= 2
    assert msg.get_attr("PORTOWNERS_A_ADDR") == sent


def test_release_sends_the_address_of_each_range() -> None:
    rec = Recorder([])
    client(rec).release([PortRange("tcp", 53, 53), PortRange("udp", 1, 2, "::1")])
    (msg,) = rec.sent
    assert msg["cmd"] == netlink.CMD_DEL_RULES and msg["version"] == netlink.GENL_VERSION
    nests = msg.get_attrs("PORTOWNERS_A_RULE")
    assert [n.get_attr("PORTOWNERS_RULE_A_ADDR") for n in nests] == [None, bytes(15) + b"\1"]


def test_every_replace_chunk_says_the_current_version() -> None:
    """At least 2: a module refuses rules on one address to an older reader."""
    rules = [Rule("tcp", p, p, uid=1, addr="127.0.0.1") for p in range(1, 5000)]
    assert {body[1] for _, body in netlink.replace_messages(rules)} == {netlink.GENL_VERSION}
    assert netlink.GENL_VERSION >= 2


class RefusingChannel:
    def request(self, body: bytes | bytearray, family: int) -> None:
        raise NetlinkError(errno.EINVAL, "Unknown attribute type")

    def close(self) -> None:
        pass


def test_an_older_module_refusing_addresses_is_explained() -> None:
    c = netlink.Client.__new__(netlink.Client)
    c.sock = type("Sock", (), {"prid": 0x1D})()
    c.channel = RefusingChannel  # type: ignore[assignment]
    with pytest.raises(netlink.PortownersError, match="cannot hold a rule on one address"):
        c.replace([Rule("tcp", 53, 53, uid=1, addr="127.0.0.1")], expect_generation=3)
    with pytest.raises(netlink.PortownersError, match="conditional"):
        c.replace([Rule("tcp", 53, 53, uid=1)], expect_generation=3)
