"""Who may bind an owned port: the semantics of docs/design.md, line by line."""

from pathlib import Path

import pytest
from conftest import (
    ALICE,
    BOB,
    CAROL,
    OTHERS,
    STAFF,
    bind1,
    binds,
    rule,
    set_root_exempt,
    skip_unless_kernel_has,
)

UNPRIV_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def test_owner_binds_privileged_port_others_refused_root_kept(po):
    assert bind1(ALICE, "tcp4", 80) == "EACCES"  # the kernel's own rule first
    po.replace([rule(f"tcp/80 uid={ALICE}")])
    assert bind1(ALICE, "tcp4", 80) == "OK"
    assert bind1(BOB, "tcp4", 80) == "EACCES"
    assert bind1(None, "tcp4", 80) == "OK"


@pytest.mark.parametrize(
    "sock,addr",
    [
        ("tcp4", "0.0.0.0"),
        ("tcp4", "127.0.0.1"),
        ("tcp6", "::"),
        ("tcp6", "::1"),
        ("tcp6", "::ffff:127.0.0.1"),
        ("udp4", "127.0.0.1"),
        ("udp6", "::"),
        ("udp6", "::ffff:0.0.0.0"),
    ],
)
def test_rule_covers_ipv4_ipv6_and_v4_mapped(po, sock, addr):
    proto = sock[:3]
    po.replace([rule(f"{proto}/53 uid={ALICE}"), rule(f"{proto}/8053 uid={ALICE}")])
    reqs = [{"sock": sock, "addr": addr, "port": p} for p in (53, 8053)]
    assert binds(ALICE, reqs) == ["OK", "OK"]
    assert binds(BOB, reqs) == ["EACCES", "EACCES"]
    assert binds(None, reqs) == ["OK", "OK"]


def test_high_port_reserved_for_its_owner(po):
    assert bind1(BOB, "tcp4", 8080) == "OK"
    po.replace([rule(f"tcp/8080 uid={ALICE}")])
    assert bind1(BOB, "tcp4", 8080) == "EACCES"
    assert bind1(BOB, "tcp6", 8080) == "EACCES"
    assert bind1(ALICE, "tcp4", 8080) == "OK"
    assert bind1(None, "tcp4", 8080) == "OK"
    assert bind1(BOB, "udp4", 8080) == "OK"  # rules are per protocol


def test_group_owner_by_egid_and_supplementary_group(po):
    po.replace([rule(f"tcp/443 gid={STAFF}"), rule(f"tcp/8443 gid={STAFF}")])
    for port in (443, 8443):
        assert bind1(BOB, "tcp4", port, gid=STAFF) == "OK"
        assert bind1(BOB, "tcp4", port, groups=[OTHERS, STAFF]) == "OK"
        assert bind1(BOB, "tcp4", port, groups=[OTHERS]) == "EACCES"
        assert bind1(BOB, "tcp4", port) == "EACCES"


def test_uid_and_gid_rule_grants_either(po):
    po.replace([rule(f"tcp/5432 uid={ALICE} gid={STAFF}")])
    assert bind1(ALICE, "tcp4", 5432) == "OK"
    assert bind1(BOB, "tcp4", 5432, groups=[STAFF]) == "OK"
    assert bind1(CAROL, "tcp4", 5432) == "EACCES"


def test_any_user_rule(po):
    po.replace([rule("tcp/631 any")])
    assert bind1(ALICE, "tcp4", 631) == "OK"
    assert bind1(BOB, "tcp6", 631) == "OK"
    assert bind1(BOB, "tcp4", 632) == "EACCES"  # the next port is the kernel's


def test_range_rule_and_port_65535(po):
    po.replace(
        [
            rule(f"tcp/1000-1010 uid={ALICE}"),
            rule(f"tcp/5000-5010 uid={ALICE}"),
            rule(f"udp/65535 uid={ALICE}"),
        ]
    )
    ports = [{"sock": "tcp4", "port": p} for p in (999, 1000, 1005, 1010, 1011)]
    assert binds(ALICE, ports) == ["EACCES", "OK", "OK", "OK", "EACCES"]
    ports = [{"sock": "tcp4", "port": p} for p in (4999, 5000, 5005, 5010, 5011)]
    assert binds(BOB, ports) == ["OK", "EACCES", "EACCES", "EACCES", "OK"]
    assert bind1(BOB, "udp4", 65535) == "EACCES"
    assert bind1(ALICE, "udp6", 65535) == "OK"


def test_port_zero_is_never_refused(po):
    """bind() to port 0 asks the kernel to pick: the module refuses no such
    bind, even with every port outside the ephemeral range owned by someone
    else. (Which port the kernel picks: test_autobind.py.)"""
    lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    owned = [f"1-{lo - 1}", f"{hi + 1}-65535"]
    po.replace([rule(f"{p}/{r} uid={ALICE}") for p in ("tcp", "udp") for r in owned])
    reqs = [{"sock": s, "port": 0} for s in ("tcp4", "tcp6", "udp4", "udp6")]
    assert binds(BOB, reqs) == ["OK"] * 4


def test_root_exempt_off_makes_owned_ports_exclusive(po):
    po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/8080 uid={ALICE}")])
    set_root_exempt(False)
    assert bind1(None, "tcp4", 80) == "EACCES"
    assert bind1(None, "tcp6", 8080) == "EACCES"
    assert bind1(None, "tcp4", 81) == "OK"  # unowned ports stay the kernel's
    assert bind1(ALICE, "tcp4", 80) == "OK"
    set_root_exempt(True)
    assert bind1(None, "tcp4", 80) == "OK"


def test_cap_net_bind_service_holder_may_bind_owned_port(po):
    po.replace([rule(f"tcp/8080 uid={ALICE}"), rule(f"tcp/80 uid={ALICE}")])
    cap = ["net_bind_service"]
    assert bind1(BOB, "tcp4", 8080, caps=cap) == "OK"
    assert bind1(BOB, "tcp4", 80, caps=cap) == "OK"
    set_root_exempt(False)
    assert bind1(BOB, "tcp4", 8080, caps=cap) == "EACCES"


def test_unprivileged_port_start_still_rules_unowned_ports(po):
    po.replace([rule(f"tcp/80 uid={ALICE}")])
    saved = UNPRIV_START.read_text()
    try:
        UNPRIV_START.write_text("100")
        assert bind1(BOB, "tcp4", 99) == "EACCES"
        assert bind1(BOB, "tcp4", 100) == "OK"
        UNPRIV_START.write_text("0")
        assert bind1(BOB, "tcp4", 81) == "OK"
        assert bind1(BOB, "tcp4", 80) == "EACCES"  # owned stays owned
        assert bind1(ALICE, "tcp4", 80) == "OK"
    finally:
        UNPRIV_START.write_text(saved)


@pytest.mark.parametrize("sock", ["udplite4", "udplite6"])
def test_udp_rule_covers_udplite(po, sock):
    skip_unless_kernel_has(sock)  # 7.2 has no UDP-Lite
    po.replace([rule(f"udp/53 uid={ALICE}"), rule(f"udp/8053 uid={ALICE}")])
    assert bind1(ALICE, sock, 53) == "OK"
    assert bind1(BOB, sock, 8053) == "EACCES"
    assert bind1(ALICE, sock, 8053) == "OK"


@pytest.mark.parametrize("sock", ["mptcp4", "mptcp6"])
def test_tcp_rule_covers_mptcp(po, sock):
    assert bind1(ALICE, sock, 80) == "EACCES"
    po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/8080 uid={ALICE}")])
    assert bind1(ALICE, sock, 80) == "OK"
    assert bind1(BOB, sock, 80) == "EACCES"
    assert bind1(BOB, sock, 8080) == "EACCES"
    assert bind1(ALICE, sock, 8080) == "OK"


@pytest.mark.parametrize("sock", ["smc4", "smc6", "ipsmc4", "ipsmc6"])
def test_tcp_rule_covers_smc(po, sock):
    # SMC binds its internal TCP socket with kernel_bind(); __inet_bind()
    # decides it (tests/vm/test_routes.py has the route in full).
    skip_unless_kernel_has(sock)  # Debian's 7.2 has no SMC; 6.1 no IPPROTO_SMC
    po.replace([rule(f"tcp/8080 uid={ALICE}")])
    assert bind1(ALICE, sock, 8080) == "OK"
    assert bind1(BOB, sock, 8080) == "EACCES"


@pytest.mark.parametrize("sock", ["sctp4", "sctp6"])
def test_sctp_owned_ports_refused_to_others(po, sock):
    po.replace([rule(f"sctp/9899 uid={ALICE}"), rule(f"sctp/99 uid={ALICE}")])
    assert bind1(BOB, sock, 9899) == "EACCES"
    assert bind1(ALICE, sock, 9899) == "OK"
    assert bind1(None, sock, 9899) == "OK"
    assert bind1(BOB, sock, 99) == "EACCES"
    # Granted below ip_unprivileged_port_start, though sctp_do_bind() checks
    # the capability itself (docs/design.md); an unowned low port is not.
    assert bind1(ALICE, sock, 99) == "OK"
    assert bind1(ALICE, sock, 98) == "EACCES"


def test_raw_sockets_are_never_touched(po):
    po.replace([rule(f"tcp/6 uid={ALICE}"), rule(f"tcp/80 uid={ALICE}")])
    set_root_exempt(False)
    assert bind1(None, "raw4", 80, addr="127.0.0.1") == "OK"
    assert bind1(None, "raw4", 6, addr="127.0.0.1") == "OK"
    assert bind1(None, "tcp4", 80) == "EACCES"
