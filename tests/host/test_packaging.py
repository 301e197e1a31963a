"""Packaging files: the systemd units, the udev rule, dkms.conf, load-table.

The real proof is `make test-boot` (vm/realboot); these are quick static
checks that run with the host tests.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


def po_version() -> str:
    m = re.search(r'#define PO_VERSION "([^"]+)"', (REPO / "kmod/po.h").read_text())
    assert m
    return m.group(1)


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string((PACKAGING / name).read_text())
    return cp


def installed_copy(tmp_path: Path, name: str) -> Path:
    """The file as packaging/install writes it (@LIBDIR@, @PORTCTL@ filled in)."""
    text = (PACKAGING / name).read_text()
    text = text.replace("@LIBDIR@", str(tmp_path)).replace("@PORTCTL@", str(tmp_path / "portctl"))
    out = tmp_path / name
    out.write_text(text)
    out.chmod(0o755 if name == "load-table" else 0o644)
    return out


def test_service_runs_before_the_network() -> None:
    u = unit("portowners.service")
    assert u["Unit"]["DefaultDependencies"] == "no"
    assert "network-pre.target" in u["Unit"]["Wants"].split()
    assert "network-pre.target" in u["Unit"]["Before"].split()
    assert u["Service"]["Type"] == "oneshot"
    assert u["Service"]["RemainAfterExit"] == "yes"
    assert "modprobe portowners" in u["Service"]["ExecStartPre"]
    assert u["Service"]["ExecStart"] == u["Service"]["ExecReload"] == "@LIBDIR@/load-table"
    assert u["Install"]["WantedBy"] == "sysinit.target"


def test_udev_rule_starts_the_load_unit_without_waiting() -> None:
    rules = [
        line
        for line in (PACKAGING / "60-portowners.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(rules) == 1
    rule = rules[0]
    for match in ('SUBSYSTEM=="module"', 'KERNEL=="portowners"', 'ACTION=="add"'):
        assert match in rule
    assert 'RUN+="/bin/systemctl --no-block start portowners-load.service"' in rule
    assert unit("portowners-load.service")["Service"]["ExecStart"] == "@LIBDIR@/load-table"


def test_dkms_conf_matches_the_module() -> None:
    conf = dict(re.findall(r'^([A-Z_]+(?:\[0\])?)="(.*)"$', (REPO / "dkms.conf").read_text(), re.M))
    assert conf["PACKAGE_NAME"] == "portowners"
    assert conf["PACKAGE_VERSION"] == po_version()
    assert conf["BUILT_MODULE_NAME[0]"] == "portowners"
    assert conf["BUILT_MODULE_LOCATION[0]"] == "kmod/"
    assert conf["AUTOINSTALL"] == "yes"
    assert (REPO / "Kbuild").read_text().strip().endswith("obj-m += kmod/")


def test_portfs_mount_unit_follows_the_table_and_is_not_enabled() -> None:
    u = unit("dev-ports.mount")
    assert (u["Mount"]["What"], u["Mount"]["Where"], u["Mount"]["Type"]) == (
        "portfs",
        "/dev/ports",
        "portfs",
    )
    assert "portowners.service" in u["Unit"]["Wants"].split()
    assert "portowners.service" in u["Unit"]["After"].split()
    install = (PACKAGING / "install").read_text()
    uninstall = (PACKAGING / "uninstall").read_text()
    assert '"$repo/packaging/dev-ports.mount" "$unitdir/dev-ports.mount"' in install
    enables = re.search(r"^[^#\n]*systemctl enable[^\n]*dev-ports", install, re.M)
    assert not enables  # the administrator's choice
    assert "/etc/systemd/system/dev-ports.mount" in uninstall
    # Unmounted before the module is unloaded: a mounted portfs holds it.
    assert uninstall.index("umount") < uninstall.index("rmmod portowners")
    for page in ("portfs.5",):
        assert f"man/{page}" in install and f"man5/{page}" in uninstall


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    installed_copy(tmp_path, "load-table")
    names = ("portowners.service", "portowners-load.service", "dev-ports.mount")
    units = [installed_copy(tmp_path, n) for n in names]
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)], capture_output=True, text=True
    )
    # Complaints about the host's own units are not ours.
    ours = [line for line in r.stderr.splitlines() if "portowners" in line or "dev-ports" in line]
    assert r.returncode == 0 or not ours, r.stderr
    assert not ours, r.stderr


def fake_portctl(tmp_path: Path, rc: int, stdout: str, stderr: str) -> None:
    script = tmp_path / "portctl"
    script.write_text(f"#!/bin/sh\necho '{stdout}'\necho '{stderr}' >&2\nexit {rc}\n")
    script.chmod(0o755)


def run_load_table(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    load_table = installed_copy(tmp_path, "load-table")
    env = dict(os.environ, PORTOWNERS_FILE=str(tmp_path / "table"))
    return subprocess.run([str(load_table)], capture_output=True, text=True, env=env)


def test_load_table_passes_success_through(tmp_path: Path) -> None:
    fake_portctl(tmp_path, 0, "loaded 2 rules", "")
    r = run_load_table(tmp_path)
    assert r.returncode == 0
    assert "loaded 2 rules" in r.stdout
    assert "<3>" not in r.stdout


def test_load_table_failure_is_loud(tmp_path: Path) -> None:
    fake_portctl(tmp_path, 1, "", "table:3: unknown user nosuchuser")
    r = run_load_table(tmp_path)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "<3>table:3: unknown user nosuchuser" in lines
    assert lines[-1].startswith("<3>portowners: FAILED to load the port table from ")


@pytest.mark.parametrize(
    "script",
    [
        "packaging/install",
        "packaging/uninstall",
        "packaging/load-table",
        "demo/run",
        "demo/guest",
        "vm/realboot",
        "vm/realboot-check",
        "vm/debian-tree",
        "vm/fresh-machine",
        "vm/console-check",
        "vm/console-selftest",
        "vm/kernel-version",
        "vm/debug-kernel",
        "vm/guest",
        "vm/run",
        "scripts/setup",
    ],
)
def test_scripts_parse(script: str) -> None:
    path = REPO / script
    assert os.access(path, os.X_OK)
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(path)], check=True)
