"""tests/vm/nlfuzz.py's message maker, without a kernel: seeded, and sound.

The fuzz itself runs in the VM (tests/vm/test_netlink_fuzz.py); here, fast,
that a seed makes the same datagrams every time (what a replay needs), that
the maker never breaks, and that its constants are the UAPI header's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vm"))
import nlfuzz

from portctl import netlink


def datagrams(mode: str, seed: int, n: int) -> list[bytes]:
    f = nlfuzz.Fuzzer(mode, seed, n, offline_family=0x20)
    out = []
    for _ in range(n):
        _, (msgs, data, _) = f.next_datagram()
        f.kernel_view(msgs, data)  # splits it as the kernel does, or fails
        assert len(data) <= 4 * nlfuzz.MAX_DATAGRAM
        out.append(data)
    return out


@pytest.mark.parametrize("mode", ["root", "user", "userns"])
def test_a_seed_makes_the_same_datagrams(mode: str) -> None:
    assert datagrams(mode, 11, 500) == datagrams(mode, 11, 500)
    assert datagrams(mode, 11, 50) != datagrams(mode, 12, 50)


def test_constants_are_the_headers() -> None:
    assert nlfuzz.CMD["REPLACE"] == netlink.CMD_REPLACE
    assert nlfuzz.CMD["MAX"] == netlink.CMD_EVENT
    assert nlfuzz.A["ADDR"] == netlink._attr_type(netlink.pomsg, "PORTOWNERS_A_ADDR")
    assert nlfuzz.A["MAX"] == len(netlink.pomsg.nla_map) - 1
    assert nlfuzz.RA["ADDR"] == netlink.RULE_A_ADDR
    assert nlfuzz.RA["MAX"] == len(netlink.rulemsg.nla_map) - 1
    assert nlfuzz.F_MORE == netlink.F_MORE
