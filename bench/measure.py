"""The benchmark itself: runs as root inside the VM that bench/run boots.

One boot, interleaved configurations, ratios measured in this run (absolute
times under software emulation mean little). Every bind the helper times is
checked against the outcome it must have; a wrong one ends the run with a
non-zero status. No timing is asserted: the figures are reported, not judged.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(os.environ.get("PORTOWNERS_REPO", "/run/portowners"))
sys.path.insert(0, str(REPO))

from portctl import events  # noqa: E402
from portctl.model import Rule  # noqa: E402
from portctl.netlink import Client  # noqa: E402

MODULE = REPO / "kmod" / "portowners.ko"
NULLPROBE = REPO / "bench" / "build" / "nullprobe" / "nullprobe.ko"
BINDLOOP = str(REPO / "bench" / "build" / "bindloop")
USER = 1000  # the bench user: a numeric id, no passwd entry needed
OTHER = 4242  # owns the 65,536 rules around the measured port
PORT = 30000  # the measured unowned port (>= 1024: no capability involved)
PRIV = 53  # the granted privileged port (udp)
CPU = "1"  # the timed loops run pinned here

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "12"))
N_BIND = int(os.environ.get("BENCH_BINDS", "4000"))
N_GRANT = int(os.environ.get("BENCH_GRANT_BINDS", "4000"))
N_AUTHBIND = int(os.environ.get("BENCH_AUTHBIND_BINDS", "10"))
N_CHECK = 200  # binds that only check an outcome (deny paths), not timed
LOAD_SIZES = [int(n) for n in os.environ.get("BENCH_LOAD_SIZES", "1024 4096 16384 65536").split()]
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


N_ADDR_RULES = 4096


def with_addresses(n: int) -> list[Rule]:
    """n rules: around(n - N_ADDR_RULES), and N_ADDR_RULES rules on 127.0.0.2
    over the same ports (never PORT or PRIV), so a bind searches both arrays
    of the table and the measured outcomes stay those of around()."""
    wide = around(n - N_ADDR_RULES)
    others = [r for r in wide if r != GRANT]
    ports = others[:: len(others) // N_ADDR_RULES][:N_ADDR_RULES]  # tcp and udp
    rules = wide + [r._replace(uid=USER, addr="127.0.0.2") for r in ports]
    assert len(rules) == n
    return rules


def module_loaded() -> bool:
    return Path("/sys/module/portowners").exists()


def insmod() -> None:
    subprocess.run(["insmod", str(MODULE)], check=True)


def rmmod() -> None:
    subprocess.run(["rmmod", "portowners"], check=True)


def nullprobe_loaded() -> str:
    """bench/nullprobe's mode ("kprobe", "ftrace"), or "" when not loaded."""
    param = Path("/sys/module/nullprobe/parameters/mode")
    return param.read_text().strip() if param.exists() else ""


# For comparison: a cgroup-BPF bind4 program, the other way to act on
# bind(), attached to the cgroup the bind loops run in. It does the least a
# port-ownership program would (reads the port, asks the uid) and allows
# everything: a lower bound on what the BPF way costs. Loaded with the bpf()
# system call directly, so no toolchain is needed.
SYS_BPF, BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 321, 5, 8, 9
BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_BIND = 18, 8
BPF_INSNS = [
    (0xBF, 0x16, 0, 0),   # r6 = r1 (ctx)
    (0x61, 0x12, 24, 0),  # r2 = ctx->user_port
    (0x85, 0x00, 0, 15),  # call bpf_get_current_uid_gid
    (0xB7, 0x00, 0, 1),   # r0 = 1: allow
    (0x95, 0x00, 0, 0),   # exit
]
_bpf: dict[str, int] = {}


def _sys_bpf(cmd: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    rc = libc.syscall(SYS_BPF, cmd, buf, 128)
    if rc < 0:
        raise SystemExit(f"bench: FAILED: bpf({cmd}): {os.strerror(ctypes.get_errno())}")
    return int(rc)


def bpf_attach() -> None:
    insns = b"".join(struct.pack("=BBhi", *i) for i in BPF_INSNS)
    ibuf, lic = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("=IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, len(BPF_INSNS),
                       ctypes.addressof(ibuf), ctypes.addressof(lic), 0, 0, 0, 0, 0,
                       b"po_bench_bind4", 0, BPF_CGROUP_INET4_BIND)
    prog = _sys_bpf(BPF_PROG_LOAD, attr)
    cg = os.open(CGROUP, os.O_RDONLY | os.O_DIRECTORY)
    _sys_bpf(BPF_PROG_ATTACH, struct.pack("=IIII", cg, prog, BPF_CGROUP_INET4_BIND, 0))
    _bpf.update(prog=prog, cg=cg)


def bpf_detach() -> None:
    _sys_bpf(BPF_PROG_DETACH, struct.pack("=IIII", _bpf["cg"], _bpf["prog"],
                                          BPF_CGROUP_INET4_BIND, 0))
    os.close(_bpf.pop("cg"))
    os.close(_bpf.pop("prog"))


def modules(want: str) -> None:
    """Get to one of: nothing loaded, "null-kprobe"/"null-ftrace"
    (bench/nullprobe in that mode), "portowners", "bpf" (the cgroup-BPF
    program)."""
    if _bpf and want != "bpf":
        bpf_detach()
    have_null = nullprobe_loaded()
    if have_null and want != f"null-{have_null}":
        subprocess.run(["rmmod", "nullprobe"], check=True)
    if module_loaded() and want != "portowners":
        rmmod()
    if want.startswith("null") and not nullprobe_loaded():
        subprocess.run(["insmod", str(NULLPROBE), f"mode={want[5:]}"], check=True)
    if want == "portowners" and not module_loaded():
        insmod()
    if want == "bpf" and not _bpf:
        bpf_attach()


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


CGROUP = Path("/sys/fs/cgroup/portowners-bench")


def enter_cgroup() -> None:
    """Run in a memory cgroup of our own: the tables are allocated with
    GFP_KERNEL_ACCOUNT, so they are charged to it, away from the noise of
    the rest of the system."""
    root = Path("/sys/fs/cgroup")
    if "cgroup2 /sys/fs/cgroup " not in Path("/proc/mounts").read_text():
        subprocess.run(["mount", "-t", "cgroup2", "none", str(root)], check=True)
    (root / "cgroup.subtree_control").write_text("+memory")
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "cgroup.procs").write_text(str(os.getpid()))


def kernel_bytes() -> int:
    """Our cgroup's unreclaimable slab (which counts large kmallocs) and
    vmalloc bytes: where a kvzalloc'd table lands."""
    stat = dict(line.split() for line in (CGROUP / "memory.stat").read_text().splitlines())
    return int(stat["slab_unreclaimable"]) + int(stat["vmalloc"])


def settle() -> None:
    """Let kvfree_rcu() free a replaced table, and the memcg statistics
    (flushed every 2 s) catch up, before memory is read: ask the shrinkers
    (kvfree_rcu has one) to drain, then wait for two quiet intervals."""
    Path("/proc/sys/vm/drop_caches").write_text("2")
    last, quiet = kernel_bytes(), 0
    for _ in range(15):
        time.sleep(2.2)
        now = kernel_bytes()
        quiet = quiet + 1 if abs(now - last) < 4096 else 0
        if quiet == 2:
            return
        last = now


def kmalloc_size(size: int) -> int:
    """What kvzalloc() takes for size bytes when kmalloc serves it (SLUB)."""
    if size > 8192:
        pages = 1
        while pages * 4096 < size:
            pages *= 2
        return pages * 4096
    for bucket in (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192):
        if size <= bucket:
            return bucket
    raise AssertionError


def timed_replace(client: Client, rules: list[Rule]) -> tuple[float, float]:
    """Wall and system-CPU seconds of one REPLACE of the whole table."""
    t0, c0 = time.monotonic(), os.times()
    client.replace(rules)
    t1, c1 = time.monotonic(), os.times()
    return t1 - t0, c1.system - c0.system


# A REPLACE encoded once and sent as raw generic netlink: what a load costs
# with no client around it (nearly all kernel time). The same messages as
# portctl.netlink.Client.replace, byte for byte after the netlink header
# (tests/host/test_encode.py checks it), packed independently here; the sweep
# of part 4 times portctl's client against them, and the rounds use them to
# reload the 65,536-rule table.
NLA_F_NESTED = 0x8000
CMD_REPLACE, A_RULE, A_FLAGS, A_OFFSET = 2, 2, 3, 4
GENL_VERSION = 3  # what portctl says (kmod/uapi/portowners.h)
R_PROTO, R_LO, R_HI, R_UID, R_GID, R_ANY, R_ADDR = 1, 2, 3, 4, 5, 6, 7
IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}


def _nla(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def _rule_nla(r: Rule) -> bytes:
    body = (_nla(R_PROTO, struct.pack("=B", IPPROTO[r.proto])) + _nla(R_LO, struct.pack("=H", r.lo))
            + _nla(R_HI, struct.pack("=H", r.hi)))
    if r.any_user:
        body += _nla(R_ANY, b"")
    if r.uid is not None:
        body += _nla(R_UID, struct.pack("=I", r.uid))
    if r.gid is not None:
        body += _nla(R_GID, struct.pack("=I", r.gid))
    if r.addr:
        body += _nla(R_ADDR, ipaddress.ip_address(r.addr).packed)
    return _nla(A_RULE | NLA_F_NESTED, body)


class RawReplace:
    """The REPLACE messages of one table, as bytes (family id filled in at
    send time: it changes when the module is loaded again)."""

    CHUNK = 2048

    def __init__(self, rules: list[Rule]) -> None:
        self.count = len(rules)
        self.bodies = []
        for start in range(0, max(len(rules), 1), self.CHUNK):
            attrs = _nla(A_OFFSET, struct.pack("=I", start))
            if start + self.CHUNK < len(rules):
                attrs += _nla(A_FLAGS, struct.pack("=I", 1))
            attrs += b"".join(_rule_nla(r) for r in rules[start : start + self.CHUNK])
            self.bodies.append(struct.pack("=BBH", CMD_REPLACE, GENL_VERSION, 0) + attrs)

    def send(self) -> float:
        """Load the table; returns the wall seconds it took."""
        with Client() as c:
            family = c.sock.prid
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind((0, 0))
        t0 = time.monotonic()
        try:
            for seq, body in enumerate(self.bodies, 1):
                msg = struct.pack("=IHHII", 16 + len(body), family, 1 | 4, seq, 0) + body
                sock.sendto(msg, (0, 0))
                reply = sock.recv(65536)
                kind, = struct.unpack_from("=H", reply, 4)
                err, = struct.unpack_from("=i", reply, 16)
                if kind != 2 or err != 0:
                    raise SystemExit(f"bench: FAILED: REPLACE chunk {seq}: error {err}")
        finally:
            sock.close()
        return time.monotonic() - t0


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


def kprobes(module: str) -> list[str]:
    """The module's probes as the kernel lists them ([FTRACE]: ftrace-based)."""
    debugfs = Path("/sys/kernel/debug")
    if not (debugfs / "kprobes").exists():
        subprocess.run(["mount", "-t", "debugfs", "none", str(debugfs)], check=False)
    try:
        text = (debugfs / "kprobes" / "list").read_text()
    except OSError as err:
        return [f"(cannot read the kprobe list: {err})"]
    probed = ("security_socket_bind", "__inet_bind", "__inet6_bind")
    return [" ".join(line.split()[1:]) for line in text.splitlines()
            if any(f" {sym}+" in line for sym in probed)]


def setup_authbind() -> None:
    byport = Path("/etc/authbind/byport")
    byport.mkdir(parents=True, exist_ok=True)
    f = byport / str(PRIV)
    f.write_text("")
    os.chown(f, USER, USER)
    os.chmod(f, 0o500)  # authbind: the user must be able to execute it


# The configurations of part 1, in the order a round visits them, what is
# loaded in each, and how they are named in the report.
CONFIGS = ["unloaded", "bpf", "null-kprobe", "null-ftrace", "empty", "1 rule",
           "1 rule, events", "65536 rules", "65536 with addr", "65536 elsewhere"]
LOADED = {"unloaded": "", "bpf": "bpf", "null-kprobe": "null-kprobe",
          "null-ftrace": "null-ftrace", "empty": "portowners", "1 rule": "portowners",
          "1 rule, events": "portowners", "65536 rules": "portowners",
          "65536 with addr": "portowners", "65536 elsewhere": "portowners"}
NAMES = {"unloaded": "no module", "bpf": "cgroup-BPF bind4 (for scale)",
         "null-kprobe": "kprobe, empty handler", "null-ftrace": "ftrace_ops, empty handler",
         "65536 elsewhere": "65536 rules, other netns only",
         "empty": "portowners, empty table",
         "1 rule": "portowners, 1 rule", "65536 rules": "portowners, 65536 rules",
         "1 rule, events": "1 rule, watched (grants)",
         "65536 with addr": f"65536, {N_ADDR_RULES} on an address"}
RULES = {"empty": 0, "1 rule": 1, "1 rule, events": 1, "65536 rules": 65536,
         "65536 with addr": 65536, "65536 elsewhere": 0}
# The namespace that holds the 65,536 rules of "65536 elsewhere": binds in
# the initial one, whose table is empty, take that namespace's fast exit.
OTHER_NS = "po-bench-other"
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body in network namespace name (sockets made there stay)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET):
            raise SystemExit(f"bench: FAILED: setns {name}: {os.strerror(ctypes.get_errno())}")
        yield
    finally:
        if libc.setns(home, CLONE_NEWNET):
            raise SystemExit("bench: FAILED: cannot return to the initial network namespace")
        os.close(home)
        os.close(there)


@contextlib.contextmanager
def watched() -> Iterator[list[int]]:
    """A listener on both event groups, read by a thread as `portctl watch
    --grants` reads them, for the body: every granted bind is then an event.
    Yields [events read]."""
    heard = [0]
    done = threading.Event()
    with events.Listener(grants=True) as listener:

        def drain() -> None:
            while not done.is_set():
                with contextlib.suppress(events.Overrun):  # lost: counted by the kernel
                    heard[0] += len(listener.recv(timeout=0.2))

        reader = threading.Thread(target=drain)
        reader.start()
        try:
            yield heard
        finally:
            done.set()
            reader.join()


def median_ratio(num: list[float], den: list[float]) -> float:
    """Ratios paired round by round (so slow drift cancels), then median."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def main() -> int:
    modules("")
    Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text("1024")
    setup_authbind()
    enter_cgroup()
    subprocess.run(["ip", "netns", "add", OTHER_NS], check=True)
    info = machine()
    log(f"machine: {json.dumps(info)}")
    for state in ("portowners", "null-kprobe", ""):
        modules(state)
        if state:
            log(f"kprobes of {state}: " + "; ".join(kprobes(state)))
    one = [GRANT]
    big = RawReplace(around(65536))
    big_addr = RawReplace(with_addresses(65536))

    # per-bind median of one loop, per (config, what), one entry per round
    times: dict[tuple[str, str], list[float]] = {}
    loads: list[float] = []

    def record(config: str, what: str, r: dict[str, float]) -> None:
        times.setdefault((config, what), []).append(r["median_ns"])
        log(f"  {config:12} {what:22} {r['median_ns']:11.1f} ns "
            f"(trimmed mean {r['trimmed_ns']:.1f}, mean {r['mean_ns']:.1f})")

    def measure(config: str) -> None:
        for proto in ("tcp", "udp"):
            record(config, f"{proto}/{PORT} unowned",
                   bindloop(USER, proto, PORT, N_BIND, "ok"))
        if config.startswith("null") or config in ("bpf", "65536 elsewhere"):
            pass
        elif config == "unloaded":
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
        if config.startswith("65536 rules") or config == "65536 with addr":
            # the rules are enforced while we measure next to them
            bindloop(USER, "tcp", PORT + 1, N_CHECK, "EACCES", warmup=0)
            bindloop(USER, "udp", PORT - 1, N_CHECK, "EACCES", warmup=0)

    t_start = time.monotonic()
    for rnd in range(ROUNDS):
        order = CONFIGS if rnd % 2 == 0 else CONFIGS[::-1]
        log(f"round {rnd + 1}/{ROUNDS}: {' -> '.join(order)}")
        for config in order:
            modules(LOADED[config])
            if config in RULES:
                with in_netns(OTHER_NS):
                    if config == "65536 elsewhere":
                        big.send()
                    with Client() as c:
                        if config != "65536 elsewhere":
                            c.flush()
                        elsewhere = c.status().rule_count
                if elsewhere != (65536 if config == "65536 elsewhere" else 0):
                    raise SystemExit(f"bench: FAILED: {OTHER_NS} has {elsewhere} rules")
                if config == "65536 rules":
                    loads.append(big.send())
                elif config == "65536 with addr":
                    big_addr.send()
                with Client() as c:
                    if config in ("empty", "65536 elsewhere"):
                        c.flush()
                    elif config.startswith("1 rule"):
                        c.replace(one)
                    got = c.status().rule_count
                if got != RULES[config]:
                    raise SystemExit(f"bench: FAILED: table has {got} rules, not {RULES[config]}")
            if config == "1 rule, events":
                with watched() as heard:
                    measure(config)
                log(f"  {config:12} {heard[0]} events heard")
            else:
                measure(config)
    modules("")
    t_rounds = time.monotonic() - t_start

    # Part 4: loading tables of growing size, time and kernel memory. Each
    # repeat loads every size twice, through portctl's client (encoding
    # included) and pre-encoded, each into an emptied and settled table, the
    # two in turns (which goes first alternates between repeats); kernel
    # memory is read around the first of the two.
    log("table loads")
    insmod()
    sweep: dict[int, list[dict[str, float]]] = {}
    with Client() as c:
        for rep in range(LOAD_REPEATS):
            for n in LOAD_SIZES:
                rules = around(n)
                raw = RawReplace(rules)
                ways = ("portctl", "raw") if rep % 2 == 0 else ("raw", "portctl")
                for way in ways:
                    c.flush()
                    settle()
                    before, vm0 = kernel_bytes(), vmalloc_bytes()
                    c0 = os.times()
                    wall = raw.send() if way == "raw" else timed_replace(c, rules)[0]
                    c1 = os.times()
                    row = {"client": float(way == "portctl"), "wall": wall,
                           "sys": c1.system - c0.system}
                    if way == ways[0]:
                        settle()
                        row["mem"] = kernel_bytes() - before
                        row["vmalloc"] = vmalloc_bytes() - vm0
                    if c.status().rule_count != n:
                        raise SystemExit(f"bench: FAILED: table of {n} rules not loaded")
                    sweep.setdefault(n, []).append(row)
                    mem = (f", charged {row['mem'] / 1024:+8.1f} KiB "
                           f"(vmalloc {row['vmalloc'] / 1024:+.0f} KiB)" if "mem" in row else "")
                    log(f"  {n:6} rules ({way}): {wall * 1000:8.1f} ms wall, "
                        f"{row['sys'] * 1000:7.1f} ms sys{mem}")
        c.flush()
    rmmod()

    # The report.
    def t(config: str, what: str) -> list[float]:
        return times[(config, what)]

    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"machine: {info['host']}; guest {info['kernel']}, "
             f"{info['guest_cpus']} vCPU TCG ({info['guest_cpu']}), {info['guest_mem']}",
             f"rounds: {ROUNDS}, in {t_rounds:.0f} s; per round and case, {N_BIND} timed binds "
             f"(unowned), {N_GRANT} (granted/root), {N_AUTHBIND} (authbind)",
             "ns = per-bind median of a loop, median of the rounds; "
             "ratio = median over rounds of the ratio within a round", ""]
    lines.append("1. bind() on an unowned port (uid 1000), vs no module loaded")
    lines.append(f"   {'':28} {'tcp ns':>8} {'ratio':>7} {'udp ns':>8} {'ratio':>7}")
    for config in CONFIGS:
        cells = []
        for proto in ("tcp", "udp"):
            what = f"{proto}/{PORT} unowned"
            ratio = median_ratio(t(config, what), t("unloaded", what))
            cells.append(f"{med[(config, what)]:8.0f} {ratio:6.3f}x")
        lines.append(f"   {NAMES[config]:28} {cells[0]} {cells[1]}")
    cells = [f"{median_ratio(t('65536 rules', w), t('1 rule', w)):6.3f}x"
             for w in (f"tcp/{PORT} unowned", f"udp/{PORT} unowned")]
    lines.append(f"   {'65536 rules vs 1 rule':28} {'':8} {cells[0]} {'':8} {cells[1]}")
    cells = [f"{median_ratio(t('65536 with addr', w), t('65536 rules', w)):6.3f}x"
             for w in (f"tcp/{PORT} unowned", f"udp/{PORT} unowned")]
    lines.append(f"   {'with addr vs without':28} {'':8} {cells[0]} {'':8} {cells[1]}")
    cells = [f"{median_ratio(t('65536 elsewhere', w), t('empty', w)):6.3f}x"
             for w in (f"tcp/{PORT} unowned", f"udp/{PORT} unowned")]
    lines.append(f"   {'rules elsewhere vs none':28} {'':8} {cells[0]} {'':8} {cells[1]}")
    cells = [f"{median_ratio(t('null-ftrace', w), t('null-kprobe', w)):6.3f}x"
             for w in (f"tcp/{PORT} unowned", f"udp/{PORT} unowned")]
    lines.append(f"   {'ftrace_ops vs kprobe (empty)':28} {'':8} {cells[0]} {'':8} {cells[1]}")
    root = t("unloaded", f"udp/{PRIV} root")
    g1 = t("1 rule", f"udp/{PRIV} granted")
    g1w = t("1 rule, events", f"udp/{PRIV} granted")
    g64 = t("65536 rules", f"udp/{PRIV} granted")
    g64a = t("65536 with addr", f"udp/{PRIV} granted")
    ab = t("unloaded", f"udp/{PRIV} authbind")
    lines += ["",
              f"2. privileged bind udp/{PRIV}: the owner (uid 1000) granted by portowners, vs root",
              f"   root, module not loaded          {statistics.median(root):12.0f} ns   1.000x",
              f"   owner, granted (1 rule)          {statistics.median(g1):12.0f} ns   "
              f"{median_ratio(g1, root):5.3f}x",
              f"   owner, granted (1 rule, watched) {statistics.median(g1w):12.0f} ns   "
              f"{median_ratio(g1w, root):5.3f}x ({median_ratio(g1w, g1):5.3f}x unwatched)",
              f"   owner, granted (65536 rules)     {statistics.median(g64):12.0f} ns   "
              f"{median_ratio(g64, root):5.3f}x",
              f"   owner, granted (65536, {N_ADDR_RULES} on an address) "
              f"{statistics.median(g64a):7.0f} ns   {median_ratio(g64a, root):5.3f}x",
              "",
              "3. the owner through authbind --deep (module not loaded)",
              f"   authbind                         {statistics.median(ab):12.0f} ns   "
              f"{median_ratio(ab, root):5.0f}x root, "
              f"{median_ratio(ab, g1):5.0f}x portowners (1 rule)"]
    lines += ["",
              "4. loading a table: REPLACE through portctl's client, encoding included",
              "   (wall, of which system CPU), and the same messages pre-encoded (wall:",
              "   nearly all kernel), each into an empty table; x = portctl / pre-encoded",
              f"   within a repeat; median of {LOAD_REPEATS}. Kernel memory charged to the "
              "loader's memcg",
              "   (slab_unreclaimable + vmalloc); the table's size (80 + 32 B/rule: each",
              "   rule and its two counters) and",
              "   what the kernel allocates for it",
              f"   {'rules':>6} {'portctl ms':>11} {'sys ms':>7} {'kernel ms':>10} {'x':>6}"
              f" {'charged KiB':>12} {'B/rule':>7} {'table B':>9} {'alloc KiB':>10}"]
    for n in LOAD_SIZES:
        rows = sweep[n]
        client = [r for r in rows if r["client"]]
        raw = [r for r in rows if not r["client"]]
        wall = statistics.median(r["wall"] for r in client) * 1000
        sys_ms = statistics.median(r["sys"] for r in client) * 1000
        kern = statistics.median(r["wall"] for r in raw) * 1000
        ratio = median_ratio([r["wall"] for r in client], [r["wall"] for r in raw])
        mem = statistics.median(r["mem"] for r in rows if "mem" in r)
        vm = statistics.median(r["vmalloc"] for r in rows if "vmalloc" in r)
        size = 80 + 32 * n  # struct po_table; a rule, then its counters
        alloc = vm if vm > 0 else kmalloc_size(size)
        lines.append(f"   {n:6} {wall:11.0f} {sys_ms:7.0f} {kern:10.1f} {ratio:5.2f}x"
                     f" {mem / 1024:12.1f} {mem / n:7.1f} {size:9} {alloc / 1024:10.0f}"
                     + ("  vmalloc" if vm > 0 else "  kmalloc"))
    if loads:
        lines.append(f"   65536 rules, pre-encoded, in the rounds: "
                     f"{statistics.median(loads) * 1000:.0f} ms (median of {len(loads)})")
    lines.append("")
    lines.append("per-round spread, ns (min .. max):")
    for (config, what), v in sorted(times.items()):
        lines.append(f"   {config:12} {what:22} {min(v):12.1f} .. {max(v):12.1f}")
    print("PORTOWNERS-BENCH-TABLE-BEGIN")
    print("\n".join(lines))
    print("PORTOWNERS-BENCH-TABLE-END", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
