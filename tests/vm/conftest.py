"""Kernel tests: they run as root inside the VM that vm/run boots.

Binds are tried by tests/vm/binder.py as other users (numeric ids with
setpriv: no passwd entry needed), and the module is driven through portctl's
netlink client, the same code the CLI uses.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from portctl.model import Rule
from portctl.netlink import Client

REPO = Path(os.environ.get("PORTOWNERS_REPO", Path(__file__).resolve().parents[2]))
# vm/run-kernels builds each kernel's module in its own directory (the
# suites of two kernels run at once): vm/guest names it.
MODULE = Path(os.environ.get("PORTOWNERS_MODULE", REPO / "kmod" / "portowners.ko"))
BINDER = (REPO / "tests" / "vm" / "binder.py").read_text()
VENV_PYTHON = str(REPO / ".venv" / "bin" / "python")

ALICE, BOB, CAROL = 1000, 1001, 1002
STAFF, OTHERS = 2000, 2001


def module_loaded() -> bool:
    return Path("/sys/module/portowners").exists()


def load_module(*params: str) -> None:
    if not module_loaded():
        subprocess.run(["insmod", str(MODULE), *params], check=True)


def unload_module() -> None:
    if module_loaded():
        subprocess.run(["rmmod", "portowners"], check=True)


def set_root_exempt(on: bool) -> None:
    Path("/sys/module/portowners/parameters/root_exempt").write_text("Y" if on else "N")


def run_as(
    uid: int | None,
    argv: Sequence[str],
    gid: int | None = None,
    groups: Sequence[int] = (),
    caps: Sequence[str] = (),
    netns: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run argv as uid (None: as root, with all capabilities)."""
    cmd: list[str] = []
    if netns:
        cmd += ["ip", "netns", "exec", netns]
    if uid is not None:
        cmd += ["setpriv", f"--reuid={uid}", f"--regid={gid if gid is not None else uid}"]
        cmd += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
        if caps:
            plus = ",".join(f"+{c}" for c in caps)
            cmd += [f"--inh-caps={plus}", f"--ambient-caps={plus}"]
        cmd += ["--"]
    return subprocess.run(cmd + list(argv), capture_output=True, text=True, check=check)


def report(line: str) -> None:
    """To the console, past pytest's capture: vm/run's log keeps the figures."""
    with open("/dev/console", "w") as console:
        console.write(line + "\n")


def binds(uid: int | None, reqs: Sequence[dict[str, Any]], **kw: Any) -> list[str]:
    """Try each bind as uid; "OK" or the errno name for each."""
    out = run_as(uid, ["/usr/bin/python3", "-c", BINDER, json.dumps(list(reqs))], **kw)
    return list(json.loads(out.stdout))


def bind1(uid: int | None, sock: str, port: int, **kw: Any) -> str:
    """One bind of a fresh socket of kind sock ("tcp4", "udp6", ...)."""
    req: dict[str, Any] = {"sock": sock, "port": port}
    for key in ("addr", "family", "len", "v6only", "comm", "repeat"):
        if key in kw:
            req[key] = kw.pop(key)
    return binds(uid, [req], **kw)[0]


# Protocols some kernels leave out: binder.py's socket kind -> (name, socket
# family or None for AF_INET/AF_INET6, type, protocol, or None for SMCPROTO_*).
AF_SMC = 43
OPTIONAL_PROTOCOLS: dict[str, tuple[str, int | None, int, int | None]] = {
    "udplite": ("UDP-Lite", None, socket.SOCK_DGRAM, 136),
    "smc": ("SMC (AF_SMC)", AF_SMC, socket.SOCK_STREAM, None),
    "ipsmc": ("SMC over IPPROTO_SMC (6.11+)", None, socket.SOCK_STREAM, 256),
}


def skip_unless_kernel_has(sock: str) -> None:
    """Skip, naming the kernel, when it cannot make sock's sockets at all.

    7.2 has no UDP-Lite, and Debian's 7.2 no SMC: a test of them there is
    skipped, not passed, and the skip says why. Only "no such protocol or
    family" skips; any other error is raised.
    """
    kind, ver = sock[:-1], sock[-1]
    name, sock_family, typ, proto = OPTIONAL_PROTOCOLS[kind]
    family = sock_family or (socket.AF_INET6 if ver == "6" else socket.AF_INET)
    if proto is None:
        proto = 1 if ver == "6" else 0
    try:
        socket.socket(family, typ, proto).close()
    except OSError as e:
        if e.errno not in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
            raise
        pytest.skip(
            f"kernel {os.uname().release} has no {name}: "
            f"socket({family}, {typ}, {proto}) fails {errno.errorcode[e.errno]}"
        )


def rule(spec: str) -> Rule:
    """'tcp/80-90 uid=1000 gid=2000', 'udp/53 any', 'tcp/127.0.0.1:53 uid=0' or
    'udp/[::1]:53 uid=0' -> Rule, for short tests."""
    ports, *owner = spec.split()
    proto, rng = ports.split("/")
    addr, _, rng = rng.rpartition(":")
    lo, _, hi = rng.partition("-")
    kw: dict[str, Any] = {}
    for word in owner:
        if word == "any":
            kw["any_user"] = True
        else:
            key, value = word.split("=")
            kw[key] = int(value)
    return Rule(proto, int(lo), int(hi or lo), addr=addr.strip("[]"), **kw)


@pytest.fixture
def module() -> Iterator[None]:
    load_module()
    set_root_exempt(True)
    yield
    if module_loaded():
        set_root_exempt(True)


@pytest.fixture
def po(module: None) -> Iterator[Client]:
    """A client on an emptied table, emptied again afterwards."""
    with Client() as client:
        client.flush()
        yield client
        client.flush()


CLIENT = """
import json, sys
from portctl.model import Rule
from portctl.netlink import Client, PortownersError
out = {}
try:
    with Client() as po:
        for spec in json.loads(sys.argv[1]):
            po.replace([Rule(**spec)])
        out["rules"] = [r._asdict() for r in po.rules()]
        out["status"] = po.status().__dict__
except PortownersError as e:
    out["error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""


def client_as(uid, *rules, prefix=(), netns=None):
    """Run the netlink client as uid (None: root) and report what it saw."""
    env_argv = ["env", f"PYTHONPATH={REPO}", VENV_PYTHON, "-c", CLIENT]
    specs = json.dumps([r._asdict() for r in rules])
    out = run_as(uid, [*prefix, *env_argv, specs], netns=netns)
    return json.loads(out.stdout)


@pytest.fixture
def netns(module) -> Iterator[list[str]]:
    names = ["po-a", "po-b"]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
        subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
    yield names
    for n in names:
        subprocess.run(["ip", "netns", "del", n], check=True)


# portctl as an administrator runs it, on real (named) users.
# Real users, made in the guest's throwaway /etc: names must resolve.
USERS = {"po-named": 3053, "po-alice": 3001, "po-bob": 3002, "po-carol": 3003}
STAFF_GID = 4000


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    # Appended by hand: useradd cannot replace /etc/shadow, which virtme-ng
    # mounts over; the guest's /etc is a throwaway overlay anyway.
    passwd, group = Path("/etc/passwd"), Path("/etc/group")
    saved = passwd.read_text(), group.read_text()
    with passwd.open("a") as f:
        for name, uid in USERS.items():
            f.write(f"{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n")
    with group.open("a") as f:
        for name, uid in USERS.items():
            f.write(f"{name}:x:{uid}:\n")
        f.write(f"po-staff:x:{STAFF_GID}:po-carol\n")
    yield
    passwd.write_text(saved[0])
    group.write_text(saved[1])


@pytest.fixture
def table(tmp_path: Path, module) -> Iterator[Path]:
    path = tmp_path / "portowners"
    path.write_text("# the test's table\n")
    yield path
    with Client() as po:
        po.flush()


def portctl(*args: str, uid: int | None = None, file: Path | None = None):
    env = ["env", f"PYTHONPATH={REPO}"]
    if file is not None:
        env.append(f"PORTOWNERS_FILE={file}")
    return run_as(uid, [*env, VENV_PYTHON, "-m", "portctl", *args], check=False)


def user_bind(name: str, port: int, sock: str = "tcp4", **kw) -> str:
    uid = USERS[name]
    groups = [g for g in os.getgrouplist(name, uid)]
    return bind1(uid, sock, port, gid=uid, groups=groups, **kw)


_terminal: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _terminal
    _terminal = config.pluginmanager.get_plugin("terminalreporter")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """On a debug kernel (KASAN, lockdep) the suite runs for hours: show a
    failure's traceback when it happens, not only at the end of the run,
    which a time limit may never let come."""
    if report.failed and _terminal and os.uname().release.endswith("-debug"):
        _terminal.write_line(f"\n{report.nodeid} ({report.when}) FAILED:")
        _terminal.write_line(report.longreprtext)


def pytest_addoption(parser: pytest.Parser) -> None:
    # tests/vm/test_netlink_fuzz.py; vm/run passes its arguments to pytest:
    # vm/run -k fuzz --fuzz-count=100000 --fuzz-seed=7 (docs/testing.md).
    parser.addoption(
        "--fuzz-count",
        type=int,
        default=int(os.environ.get("PORTOWNERS_FUZZ_COUNT", "0")) or None,
        help="netlink fuzz: datagrams in all (default: CI's count; env PORTOWNERS_FUZZ_COUNT)",
    )
    parser.addoption(
        "--fuzz-seed",
        default=os.environ.get("PORTOWNERS_FUZZ_SEED"),
        help="netlink fuzz: seed, or 'random' (default: CI's; env PORTOWNERS_FUZZ_SEED)",
    )
    # tests/vm/test_events.py's storm: CI's 40,000 overrun the 256-event ring
    # and a listener's buffer as surely as 100,000 and take 100 s less a kernel.
    parser.addoption(
        "--storm-count",
        type=int,
        default=int(os.environ.get("PORTOWNERS_STORM_COUNT", "40000")),
        help="event storm: denials, a multiple of 4 (default 40000; env PORTOWNERS_STORM_COUNT)",
    )


@pytest.fixture(scope="session", autouse=True)
def _sysctl_defaults() -> Iterator[None]:
    path = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    saved = path.read_text()
    yield
    path.write_text(saved)
