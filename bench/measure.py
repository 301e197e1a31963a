"""The benchmark itself: runs as root inside the VM that bench/run boots.

One boot, interleaved configurations, ratios measured in this run (absolute
times under software emulation mean little). Every bind the helper times is
checked against the outcome it must have; a wrong one ends the run with a
non-zero status. No timing is asserted: the figures are reported, not judged.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(os.environ.get("PORTOWNERS_REPO", "/run/portowners"))
sys.path.insert(0, str(REPO))

from portctl.model import Rule  # noqa: E402
from portctl.netlink import Client  # noqa: E402

MODULE = REPO / "kmod" / "portowners.ko"
BINDLOOP = str(REPO / "bench" / "build" / "bindloop")
USER = 1000  # the bench user: a numeric id, no passwd entry needed
OTHER = 4242  # owns the 65,536 rules around the measured port
PORT = 30000  # the measured unowned port (>= 1024: no capability involved)
PRIV = 53  # the granted privileged port (udp)
CPU = "1"  # the timed loops run pinned here

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
N_BIND = int(os.environ.get("BENCH_BINDS", "20000"))
N_GRANT = int(os.environ.get("BENCH_GRANT_BINDS", "10000"))
N_AUTHBIND = int(os.environ.get("BENCH_AUTHBIND_BINDS", "20"))
N_CHECK = 200  # binds that only check an outcome (deny paths), not timed
LOAD_SIZES = [1024, 4096, 16384, 65536]
LOAD_REPEATS = int(os.environ.get("BENCH_LOAD_REPEATS", "3"))

GRANT = Rule("udp", PRIV, PRIV, uid=USER)


def log(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


def around(n: int) -> list[Rule]:
    """n single-port rules, half tcp and half udp, around PORT (never on it);
    the udp half includes the grant of udp/PRIV to USER."""
    rules = [GRANT]
    for proto, want in (("tcp", n // 2), ("udp", n - n // 2 - 1)):
        lo = PORT - want // 2
        ports = [p for p in range(lo, lo + want + 1) if p != PORT][:want]
        rules += [Rule(proto, p, p, uid=OTHER) for p in ports]
    assert len(rules) == n and len({(r.proto, r.lo) for r in rules}) == n
    return rules


def module_loaded() -> bool:
    return Path("/sys/module/portowners").exists()


def insmod() -> None:
    subprocess.run(["insmod", str(MODULE)], check=True)


def rmmod() -> None:
    subprocess.run(["rmmod", "portowners"], check=True)


def bindloop(uid: int | None, proto: str, port: int, n: int, expect: str,
             authbind: bool = False, warmup: int | None = None) -> dict[str, float]:
    cmd: list[str] = []
    if uid is not None:
        cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    cmd += ["taskset", "-c", CPU]
    if authbind:
        cmd += ["authbind", "--deep"]
    cmd += [BINDLOOP, proto, str(port), str(n), expect]
    if warmup is not None:
        cmd.append(str(warmup))
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench: FAILED: {' '.join(cmd)}: exit {out.returncode}\n"
                         f"{out.stdout}{out.stderr}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out.stdout)}


def meminfo() -> dict[str, int]:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":")
        info[key] = int(value.split()[0]) * 1024
    return info


def vmalloc_bytes() -> int:
    """Bytes the module holds in vmalloc areas now (kvzalloc's fallback)."""
    total = 0
    for line in Path("/proc/vmallocinfo").read_text().splitlines():
        if "[portowners]" in line:
            total += int(line.split()[1])
    return total


def kernel_bytes() -> int:
    m = meminfo()
    return m["SUnreclaim"] + m["VmallocUsed"]


def settle() -> None:
    """Let kvfree_rcu() free a replaced table before memory is read."""
    last = kernel_bytes()
    for _ in range(20):
        time.sleep(0.5)
        now = kernel_bytes()
        if abs(now - last) < 64 * 1024:
            return
        last = now


def timed_replace(client: Client, rules: list[Rule]) -> tuple[float, float]:
    """Wall and system-CPU seconds of one REPLACE of the whole table."""
    t0, c0 = time.monotonic(), os.times()
    client.replace(rules)
    t1, c1 = time.monotonic(), os.times()
    return t1 - t0, c1.system - c0.system


def machine() -> dict[str, str]:
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    cs = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    return {
        "kernel": os.uname().release,
        "guest_cpu": cpu.group(1) if cpu else "?",
        "guest_cpus": str(os.cpu_count()),
        "clocksource": cs.read_text().strip(),
        "guest_mem": f"{meminfo()['MemTotal'] // 2**20} MiB",
        "host": os.environ.get("BENCH_HOST", "?"),
    }


def setup_authbind() -> None:
    byport = Path("/etc/authbind/byport")
    byport.mkdir(parents=True, exist_ok=True)
    f = byport / str(PRIV)
    f.write_text("")
    os.chown(f, USER, USER)
    os.chmod(f, 0o500)  # authbind: the user must be able to execute it


# The configurations of part 1, in the order a round visits them.
CONFIGS = ["unloaded", "empty", "1 rule", "65536 rules"]


def main() -> int:
    if module_loaded():
        rmmod()
    Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text("1024")
    setup_authbind()
    info = machine()
    log(f"machine: {json.dumps(info)}")
    big = around(65536)
    one = [GRANT]

    # bind times per (config, what) per round
    times: dict[tuple[str, str], list[float]] = {}
    loads: list[tuple[float, float]] = []

    def record(config: str, what: str, r: dict[str, float]) -> None:
        times.setdefault((config, what), []).append(r["trimmed_ns"])
        log(f"  {config:12} {what:22} {r['trimmed_ns']:9.1f} ns "
            f"(median {r['median_ns']:.1f}, mean {r['mean_ns']:.1f}, "
            f"timer {r['timer_ns']:.1f})")

    def measure(config: str) -> None:
        for proto in ("tcp", "udp"):
            record(config, f"{proto}/{PORT} unowned",
                   bindloop(USER, proto, PORT, N_BIND, "ok"))
        if config == "unloaded":
            record(config, f"udp/{PRIV} root",
                   bindloop(None, "udp", PRIV, N_GRANT, "ok"))
            record(config, f"udp/{PRIV} authbind",
                   bindloop(USER, "udp", PRIV, N_AUTHBIND, "ok", authbind=True, warmup=2))
            bindloop(USER, "udp", PRIV, N_CHECK, "EACCES", warmup=0)
        elif config == "empty":
            bindloop(USER, "udp", PRIV, N_CHECK, "EACCES", warmup=0)
        else:
            record(config, f"udp/{PRIV} granted",
                   bindloop(USER, "udp", PRIV, N_GRANT, "ok"))
            # root keeps its capability (root_exempt): still allowed
            bindloop(None, "udp", PRIV, N_CHECK, "ok", warmup=0)
        if config == "65536 rules":
            # the rules are enforced while we measure next to them
            bindloop(USER, "tcp", PORT + 1, N_CHECK, "EACCES", warmup=0)
            bindloop(USER, "udp", PORT - 1, N_CHECK, "EACCES", warmup=0)

    for rnd in range(ROUNDS):
        order = CONFIGS if rnd % 2 == 0 else CONFIGS[::-1]
        log(f"round {rnd + 1}/{ROUNDS}: {' -> '.join(order)}")
        for config in order:
            # get into config from its neighbour in the order
            if config == "unloaded":
                if module_loaded():
                    rmmod()
            else:
                if not module_loaded():
                    insmod()
                with Client() as c:
                    if config == "empty":
                        c.flush()
                    elif config == "1 rule":
                        c.replace(one)
                    else:
                        loads.append(timed_replace(c, big))
                    want = {"empty": 0, "1 rule": 1, "65536 rules": 65536}[config]
                    got = c.status().rule_count
                    if got != want:
                        raise SystemExit(f"bench: FAILED: table has {got} rules, not {want}")
            measure(config)
    if module_loaded():
        rmmod()

    # Part 4: loading tables of growing size, time and kernel memory.
    log("table loads")
    insmod()
    sweep: dict[int, list[dict[str, float]]] = {}
    with Client() as c:
        for rep in range(LOAD_REPEATS):
            for n in LOAD_SIZES:
                rules = around(n)
                c.flush()
                settle()
                before, vm0 = kernel_bytes(), vmalloc_bytes()
                wall, sys_s = timed_replace(c, rules)
                settle()
                after, vm1 = kernel_bytes(), vmalloc_bytes()
                if c.status().rule_count != n:
                    raise SystemExit(f"bench: FAILED: table of {n} rules not loaded")
                row = {"wall": wall, "sys": sys_s, "mem": after - before,
                       "vmalloc": vm1 - vm0}
                sweep.setdefault(n, []).append(row)
                log(f"  {n:6} rules: {wall * 1000:8.1f} ms wall, {sys_s * 1000:7.1f} ms sys, "
                    f"kernel memory {row['mem'] / 1024:+8.0f} KiB "
                    f"(vmalloc {row['vmalloc'] / 1024:+.0f} KiB)")
        c.flush()
    rmmod()

    # The report.
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: (min(v), max(v)) for k, v in times.items()}
    lines = [f"machine: {info['host']}; guest {info['kernel']}, "
             f"{info['guest_cpus']} vCPU TCG ({info['guest_cpu']}), {info['guest_mem']}, "
             f"clocksource {info['clocksource']}",
             f"rounds: {ROUNDS}; per round {N_BIND} timed binds per unowned case, "
             f"{N_GRANT} per granted/root case, {N_AUTHBIND} with authbind; "
             "figure = 10%-trimmed mean of one round, median of the rounds", ""]
    lines.append("1. bind() on an unowned port (uid 1000), vs module not loaded")
    lines.append(f"   {'':10} {'unloaded':>10} {'empty':>16} {'1 rule':>16} {'65536 rules':>16}"
                 f" {'65536 vs 1':>11}")
    for proto in ("tcp", "udp"):
        what = f"{proto}/{PORT} unowned"
        base = med[("unloaded", what)]
        cells = [f"{base:8.0f}ns"]
        for config in CONFIGS[1:]:
            v = med[(config, what)]
            cells.append(f"{v:7.0f}ns {v / base:5.3f}x")
        ratio = med[("65536 rules", what)] / med[("1 rule", what)]
        lines.append(f"   {proto:10} {cells[0]:>10} {cells[1]:>16} {cells[2]:>16} {cells[3]:>16}"
                     f" {ratio:10.3f}x")
    root = med[("unloaded", f"udp/{PRIV} root")]
    g1 = med[("1 rule", f"udp/{PRIV} granted")]
    g64 = med[("65536 rules", f"udp/{PRIV} granted")]
    ab = med[("unloaded", f"udp/{PRIV} authbind")]
    lines += ["",
              f"2. privileged bind udp/{PRIV}",
              f"   root, module not loaded          {root:10.0f} ns   1.000x",
              f"   owner, granted (1 rule)          {g1:10.0f} ns   {g1 / root:5.3f}x",
              f"   owner, granted (65536 rules)     {g64:10.0f} ns   {g64 / root:5.3f}x",
              "",
              f"3. owner via authbind --deep        {ab:10.0f} ns   {ab / root:5.0f}x root,"
              f" {ab / g1:5.0f}x portowners"]
    lines += ["", "4. loading a table (REPLACE from portctl's client; median of "
              f"{LOAD_REPEATS}); memory = SUnreclaim + VmallocUsed delta",
              f"   {'rules':>6} {'wall ms':>9} {'sys ms':>8} {'KiB':>8} {'B/rule':>7}"
              f" {'table bytes':>12}"]
    for n in LOAD_SIZES:
        rows = sweep[n]
        wall = statistics.median(r["wall"] for r in rows) * 1000
        sys_ms = statistics.median(r["sys"] for r in rows) * 1000
        mem = statistics.median(r["mem"] for r in rows)
        vm = statistics.median(r["vmalloc"] for r in rows)
        lines.append(f"   {n:6} {wall:9.1f} {sys_ms:8.1f} {mem / 1024:8.0f} {mem / n:7.1f}"
                     f" {44 + 16 * n:12}" + ("  (vmalloc)" if vm > 0 else ""))
    if loads:
        lines.append(f"   65536 rules in the rounds above: "
                     f"{statistics.median(w for w, _ in loads) * 1000:.0f} ms wall (median of "
                     f"{len(loads)})")
    lines.append("")
    lines.append("per-round spread (min..max ns):")
    for (config, what), (lo, hi) in sorted(spread.items()):
        lines.append(f"   {config:12} {what:22} {lo:10.1f} .. {hi:10.1f}")
    print("PORTOWNERS-BENCH-TABLE-BEGIN")
    print("\n".join(lines))
    print("PORTOWNERS-BENCH-TABLE-END", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
