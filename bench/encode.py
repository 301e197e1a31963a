"""On the host, no kernel: how long portctl takes to encode a table's REPLACE
messages, and how long pyroute2 alone took (the way before the rules were
packed with struct).

    .venv/bin/python bench/encode.py            # 65,536 rules, as make bench loads
    .venv/bin/python bench/encode.py 4096 --no-pyroute2

The rules are bench/measure.py's around(n). Reported: the minimum and the
median of the runs (a shared machine: the minimum is the steadier figure).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portctl import netlink

HERE = Path(__file__).resolve().parent


def load_measure() -> Any:
    spec = importlib.util.spec_from_file_location("bench_measure", HERE / "measure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode(msg: Any, seq: int) -> bytes:
    """As pyroute2's nlm_request does, with a made-up family and port id."""
    msg["header"].update(type=0x1D, flags=5, sequence_number=seq, pid=0)
    msg.reset()
    msg.encode()
    return bytes(msg.data)


def portctl_way(rules: list[Any]) -> list[bytes]:
    chunks = netlink.replace_messages(rules)
    return [netlink.frame(body, 0x1D, seq) for seq, (_, body) in enumerate(chunks, 1)]


def encode_chunks(rules: list[Any]) -> list[bytes]:
    """encode_rules alone, called as replace_messages calls it: a chunk at a time."""
    ends: netlink.RuleEnds = {}
    step = netlink.CHUNK
    return [netlink.encode_rules(rules[i : i + step], ends) for i in range(0, len(rules), step)]


def pyroute2_way(rules: list[Any]) -> list[bytes]:
    out = []
    for start in range(0, max(len(rules), 1), netlink.CHUNK):
        attrs: list[list[Any]] = [["PORTOWNERS_A_OFFSET", start]]
        if start + netlink.CHUNK < len(rules):
            attrs.append(["PORTOWNERS_A_FLAGS", netlink.F_MORE])
        chunk = rules[start : start + netlink.CHUNK]
        attrs += [["PORTOWNERS_A_RULE", netlink.rule_attrs(r)] for r in chunk]
        msg = netlink.pomsg()
        msg["cmd"], msg["version"], msg["attrs"] = netlink.CMD_REPLACE, 1, attrs
        out.append(encode(msg, len(out) + 1))
    return out


def timed(f: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rules", nargs="?", type=int, default=65536)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-pyroute2", action="store_true", help="skip the slow reference")
    args = ap.parse_args()
    rules = load_measure().around(args.rules)
    rows = [
        ("portctl: replace_messages + frame", timed(lambda: portctl_way(rules), args.runs)),
        ("  of which encode_rules", timed(lambda: encode_chunks(rules), args.runs)),
    ]
    if not args.no_pyroute2:
        rows.append(("pyroute2 alone (before)", timed(lambda: pyroute2_way(rules), 3)))
        if portctl_way(rules) != pyroute2_way(rules):
            raise SystemExit("encode: FAILED: portctl's messages are not pyroute2's")
    print(f"{len(rules)} rules, {len(portctl_way(rules))} REPLACE messages")
    for name, v in rows:
        print(f"  {name:40} min {min(v) * 1000:9.1f} ms   median "
              f"{statistics.median(v) * 1000:9.1f} ms   ({len(v)} runs)")


if __name__ == "__main__":
    main()
