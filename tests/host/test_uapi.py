"""portctl's netlink constants against kmod/uapi/portowners.h, the one definition.

The header is compiled with the host's C compiler, so a value is what C makes
of it, and every enumerator of the header must have its Python twin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from portctl import netlink
from portctl.model import PROTOCOLS

HEADER = Path(__file__).resolve().parents[2] / "kmod" / "uapi" / "portowners.h"


def python_side() -> dict[str, int | str]:
    values: dict[str, int | str] = {
        "PORTOWNERS_GENL_NAME": netlink.GENL_NAME,
        "PORTOWNERS_GENL_VERSION": netlink.GENL_VERSION,
        "PORTOWNERS_MAX_RULES": netlink.MAX_RULES,
        "PORTOWNERS_F_MORE": netlink.F_MORE,
        "PORTOWNERS_F_STATS": netlink.F_STATS,
        "PORTOWNERS_MCGRP_DENIALS": netlink.MCGRP_DENIALS,
        "PORTOWNERS_MCGRP_GRANTS": netlink.MCGRP_GRANTS,
    }
    for name in dir(netlink):
        if name.startswith("CMD_"):
            values[f"PORTOWNERS_{name}"] = getattr(netlink, name)
    for cls in (netlink.pomsg, netlink.rulemsg):
        for index, (name, _kind) in enumerate(cls.nla_map):
            values[name] = index
    for code, verdict in netlink.VERDICTS.items():
        values[f"PORTOWNERS_VERDICT_{verdict.upper()}"] = code
    return values


STRINGS = {"PORTOWNERS_GENL_NAME", "PORTOWNERS_MCGRP_DENIALS", "PORTOWNERS_MCGRP_GRANTS"}


def c_values(names: list[str], tmp_path: Path) -> dict[str, int | str]:
    lines = [f'#include "{HEADER}"', "#include <stdio.h>", "int main(void) {"]
    for name in names:
        if name in STRINGS:
            lines.append(f'printf("{name} %s\\n", {name});')
        else:
            lines.append(f'printf("{name} %lld\\n", (long long){name});')
    lines += ["return 0; }"]
    src = tmp_path / "uapi.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "uapi"
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    out: dict[str, int | str] = {}
    for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        name, value = line.split(" ", 1)
        out[name] = value if name in STRINGS else int(value)
    return out


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_python_constants_match_the_header(tmp_path: Path) -> None:
    ours = python_side()
    assert c_values(sorted(ours), tmp_path) == ours


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_the_attribute_numbers_packed_by_hand_are_the_headers(tmp_path: Path) -> None:
    """replace_messages and encode_rules pack attributes with struct, by these
    numbers (read from the nla maps, which the test above checks): here they
    are checked against the header themselves, the address ones included."""
    packed = {
        f"PORTOWNERS_{name}": getattr(netlink, name)
        for name in dir(netlink)
        if name.startswith(("A_", "RULE_A_")) and isinstance(getattr(netlink, name), int)
    }
    assert {"PORTOWNERS_RULE_A_ADDR", "PORTOWNERS_A_RULE"} <= set(packed)
    assert c_values(sorted(packed), tmp_path) == packed
    assert (
        python_side()["PORTOWNERS_A_ADDR"]
        == c_values(["PORTOWNERS_A_ADDR"], tmp_path)["PORTOWNERS_A_ADDR"]
    )


def test_every_enumerator_of_the_header_has_a_python_twin() -> None:
    text = HEADER.read_text()
    enumerators = set(re.findall(r"^\s*(PORTOWNERS_[A-Z0-9_]+)\s*[,=]", text, re.M))
    # Counting entries and the C-only _MAX bounds have no use in Python.
    wanted = {n for n in enumerators if not n.startswith("__") and not n.endswith("_MAX")}
    missing = wanted - set(python_side())
    assert not missing


def test_every_string_of_the_header_has_a_python_twin() -> None:
    """The family and multicast group names (#defines, not enumerators)."""
    defined = set(re.findall(r"^#define\s+(PORTOWNERS_[A-Z0-9_]+)\s+\"", HEADER.read_text(), re.M))
    assert defined == STRINGS
    assert set(python_side()) >= STRINGS


def test_protocol_numbers_are_the_ipproto_ones() -> None:
    import socket

    assert PROTOCOLS == {
        "tcp": socket.IPPROTO_TCP,
        "udp": socket.IPPROTO_UDP,
        "sctp": socket.IPPROTO_SCTP,
    }
