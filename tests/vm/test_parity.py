"""Malformed binds get exactly the errno the kernel gives without the module."""

import socket

from conftest import ALICE, BOB, binds, load_module, rule, unload_module

from portctl.netlink import Client

MALFORMED = [
    {"sock": "tcp4", "port": 80, "len": 8},  # short: EINVAL
    {"sock": "tcp4", "port": 8080, "len": 15},
    {"sock": "tcp4", "port": 8080, "len": 2},
    {"sock": "tcp4", "port": 8080, "family": socket.AF_INET6},  # EAFNOSUPPORT
    {"sock": "tcp4", "port": 8080, "family": socket.AF_UNSPEC, "addr": "127.0.0.1"},
    {"sock": "udp4", "port": 8081, "addr": "192.0.2.1"},  # not local: EADDRNOTAVAIL
    {"sock": "tcp4", "port": 81, "addr": "192.0.2.1"},
    {"sock": "tcp6", "port": 8080, "len": 23},
    {"sock": "tcp6", "port": 8080, "family": socket.AF_INET, "len": 28},
    {"sock": "tcp6", "port": 8080, "addr": "ff02::1"},  # multicast stream: EINVAL
    {"sock": "udp6", "port": 8080, "len": 16},
    {"sock": "sctp4", "port": 9899, "len": 8},
    {"sock": "sctp6", "port": 9899, "len": 20},
]

# Safety before parity (docs/design.md): whether an IPv4 address is local
# depends on IP_FREEBIND, which another thread can flip between any check the
# module makes and the kernel's own. So a non-owner gets EACCES on an owned
# port even at a non-local address, where the kernel alone says EADDRNOTAVAIL;
# an unowned port keeps the kernel's errno (above).
NON_LOCAL_OWNED = [
    {"sock": "udp4", "port": 8080, "addr": "192.0.2.1"},
    {"sock": "tcp4", "port": 80, "addr": "192.0.2.1"},
]

# Well formed: the module decides these, the kernel would have let them by.
WELL_FORMED_UNSPEC_ANY = {"sock": "tcp4", "port": 8080, "family": socket.AF_UNSPEC}


def test_malformed_binds_keep_the_kernels_errno():
    unload_module()
    without = binds(BOB, MALFORMED)
    assert binds(BOB, NON_LOCAL_OWNED) == ["EADDRNOTAVAIL", "EADDRNOTAVAIL"]
    assert binds(BOB, [WELL_FORMED_UNSPEC_ANY]) == ["OK"]
    load_module()
    with Client() as po:
        po.replace(
            [
                rule(f"tcp/80 uid={ALICE}"),
                rule(f"tcp/8080 uid={ALICE}"),
                rule(f"udp/8080 uid={ALICE}"),
                rule(f"sctp/9899 uid={ALICE}"),
            ]
        )
        try:
            assert binds(BOB, MALFORMED) == without
            assert "EACCES" not in without
            assert binds(BOB, NON_LOCAL_OWNED) == ["EACCES", "EACCES"]
            # AF_UNSPEC with INADDR_ANY is an IPv4 bind to the kernel: judged.
            assert binds(BOB, [WELL_FORMED_UNSPEC_ANY]) == ["EACCES"]
            assert binds(ALICE, [WELL_FORMED_UNSPEC_ANY]) == ["OK"]
        finally:
            po.flush()
