"""Netlink fuzz (issue 11, item 3): random and mutated messages to the family.

tests/vm/nlfuzz.py makes and checks the messages (see its docstring for
every rule a reply must keep); these tests run it as root, as an
unprivileged user and as root of a user namespace of its own (unshare
-Urn), and check from outside that the unprivileged runs changed nothing:
the same generation, the same rules. vm/run itself fails the run on any
WARNING, BUG or Oops in the kernel log.

CI runs DEFAULT_COUNT datagrams with DEFAULT_SEED; the full run is
`vm/run -k fuzz --fuzz-count=100000` (docs/testing.md). A failure names the
seed and count that replay it.
"""

from __future__ import annotations

import json
import random

import pytest
from conftest import ALICE, REPO, run_as

from portctl.model import Rule
from portctl.netlink import Client

NLFUZZ = str(REPO / "tests" / "vm" / "nlfuzz.py")
PYTHON = "/usr/bin/python3"  # nlfuzz is standard library only: any user can run it
# What CI runs: about 80 s of fuzzing under QEMU's TCG (docs/testing.md).
DEFAULT_COUNT = 10000
DEFAULT_SEED = 11
# Shares of the count: root, unprivileged, root of a user namespace.
SHARES = {"root": 0.5, "user": 0.25, "userns": 0.25}
TABLE = [
    Rule("tcp", 22, 22, uid=0),
    Rule("tcp", 80, 90, uid=ALICE),
    Rule("udp", 53, 53, gid=ALICE),
    Rule("sctp", 100, 200, any_user=True),
    Rule("tcp", 8080, 8080, uid=ALICE, gid=2000),
]


@pytest.fixture(scope="module")
def fuzz(request: pytest.FixtureRequest) -> tuple[int, int]:
    """(seed, count) for this run, from --fuzz-seed/--fuzz-count or the defaults."""
    seed = request.config.getoption("--fuzz-seed") or DEFAULT_SEED
    if seed == "random":
        seed = random.SystemRandom().randrange(2**31)
    count = request.config.getoption("--fuzz-count") or DEFAULT_COUNT
    print(f"netlink fuzz: seed {seed}, {count} datagrams in all")
    return int(seed), int(count)


def nlfuzz(mode: str, fuzz: tuple[int, int], uid: int | None = None, argv0=()) -> dict:
    seed, count = fuzz
    share = max(1, int(count * SHARES[mode]))
    argv = [*argv0, PYTHON, NLFUZZ, "--mode", mode, "--seed", str(seed), "--count", str(share)]
    out = run_as(uid, argv, check=False)
    replay = f"vm/run -k fuzz --fuzz-seed={seed} --fuzz-count={count}"
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"nlfuzz {mode} died (exit {out.returncode}): {out.stderr}\nreplay: {replay}")
    if "failure" in result:
        pytest.fail(f"{result['failure']}\nreplay: {replay}")
    assert out.returncode == 0, out.stderr
    print(json.dumps(result, indent=1))
    return dict(result)


def test_fuzz_as_root(po: Client, fuzz: tuple[int, int]) -> None:
    po.replace(TABLE)
    result = nlfuzz("root", fuzz)
    assert result["acked_changes"] > 0, "no change went through: the fuzz missed the family"
    stats = result["stats"]
    assert any(k.startswith("valid:") and k.endswith(": ok") for k in stats), stats
    assert any("+extack" in k for k in stats), stats
    # The table the fuzz left behind is whole and readable by portctl.
    generation, rules = po.table()
    assert generation == result["generation"][1]
    assert len(rules) == result["rules"] == po.status().rule_count


def test_fuzz_unprivileged_changes_nothing(po: Client, fuzz: tuple[int, int]) -> None:
    po.replace(TABLE)
    before = po.table()
    result = nlfuzz("user", fuzz, uid=ALICE)
    # nlfuzz checked that each change was refused EPERM; none was acked.
    assert result["acked_changes"] == 0
    assert any(k.endswith(": EPERM") for k in result["stats"]), result["stats"]
    assert po.table() == before, "an unprivileged sender changed the table"
    assert before[1] == sorted(TABLE)


def test_fuzz_in_a_user_namespace_changes_only_its_own_table(
    po: Client, fuzz: tuple[int, int]
) -> None:
    # Root of its own user and network namespace: its own table changes
    # (within userns_max_rules); the initial namespace's never does.
    po.replace(TABLE)
    before = po.table()
    result = nlfuzz("userns", fuzz, uid=ALICE, argv0=("unshare", "-Urn"))
    assert result["acked_changes"] > 0
    assert not any(k.endswith(": EPERM") for k in result["stats"]), result["stats"]
    assert po.table() == before, "a user namespace's root changed the initial table"
