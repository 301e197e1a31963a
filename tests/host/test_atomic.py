"""The table file is replaced atomically and edited under a lock."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from portctl import config

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from portctl import config
path, a, b = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
print("ready", flush=True)
i = 0
while True:
    config.atomic_write(path, a if i % 2 else b)
    i += 1
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_atomic_write_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "portowners"
    # Big enough that a write takes several syscalls.
    a = "".join(f"tcp/{p} root\n" for p in range(1, 20001))
    b = "# other\n" + "".join(f"udp/{p} :0\n" for p in range(1, 20001))
    (tmp_path / "a").write_text(a)
    (tmp_path / "b").write_text(b)
    path.write_text(a)
    os.chmod(path, 0o640)
    rng = random.Random(1234)
    for _ in range(15):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(tmp_path / "a"), str(tmp_path / "b")],
            env=_env(),
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        content = path.read_text()
        assert content in (a, b)
        assert oct(path.stat().st_mode & 0o777) == oct(0o640)


def test_atomic_write_keeps_mode_and_creates(tmp_path: Path) -> None:
    path = tmp_path / "t"
    config.atomic_write(str(path), "x\n")
    assert path.read_text() == "x\n"
    assert path.stat().st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    config.atomic_write(str(path), "y\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


CHOWNER = """
import sys
from portctl import cli, netlink
def absent():
    raise netlink.ModuleNotLoaded()
cli.client_factory = absent
path, start = sys.argv[1], int(sys.argv[2])
for port in range(start, start + int(sys.argv[3])):
    try:
        cli.cli.main(["--file", path, "chown", "root", f"tcp/{port}"], prog_name="portctl")
    except SystemExit as e:
        assert e.code in (0, None), e.code
"""


def test_concurrent_chown_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "portowners"
    path.write_text("# shared\n")
    n = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHOWNER, str(path), str(start), str(n)],
            env=_env(),
            stderr=subprocess.DEVNULL,
        )
        for start in (1000, 2000, 3000)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    rules = config.parse(path.read_text())
    assert sorted(r.lo for r in rules) == [
        p for start in (1000, 2000, 3000) for p in range(start, start + n)
    ]
    assert path.read_text().startswith("# shared\n")


def test_lock_removes_stale_temps(tmp_path: Path) -> None:
    path = tmp_path / "portowners"
    stale = tmp_path / ".portowners.abc123.tmp"
    stale.write_text("partial")
    other = tmp_path / ".other.abc.tmp"
    other.write_text("not ours")
    with config.locked(str(path)):
        pass
    assert not stale.exists() and other.exists()
    assert (tmp_path / "portowners.lock").exists()


def test_atomic_write_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    config.atomic_write(str(link), "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
