"""Stress: 8 threads bind while the table is swapped 10,000 times and the
module is removed and inserted in a loop (issue 11, item 2).

Owner, non-owner and root bind in three processes (8 threads in all), a
fixed count each, while this process replaces the table, alternating two
tables, PORTOWNERS_STRESS_SWAPS times (10,000) and on until the workers and
the reloads are done, and another thread removes and inserts the module
PORTOWNERS_STRESS_RELOADS times (10). Table A is in before the first bind,
and some binds must meet a table (not only the empty module). Every outcome
must be one that table A, table B or no table (the module away, or just
inserted and empty) gives; vm/run fails the run on any kernel report.
A listener on both event groups (issue 12) hears the storm all along,
joining again after each reload, so events are in flight at every rmmod.
"""

import json
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ALICE, BOB, MODULE, REPO, module_loaded, report, rule, unload_module
from rawnl import Listener

from portctl.netlink import Client, PortownersError, frame, replace_messages

WORKER = (REPO / "tests" / "vm" / "stress_worker.py").read_text()
SWAPS = int(os.environ.get("PORTOWNERS_STRESS_SWAPS", "10000"))
RELOADS = int(os.environ.get("PORTOWNERS_STRESS_RELOADS", "10"))
BINDS_PER_THREAD = int(os.environ.get("PORTOWNERS_STRESS_BINDS", "3000"))

TABLE_A = [
    rule(f"tcp/8080 uid={ALICE}"),
    rule(f"tcp/8081 uid={ALICE}"),
    rule(f"udp/53 uid={ALICE}"),
    rule(f"sctp/8082 uid={ALICE}"),
    rule(f"sctp/83 uid={ALICE}"),
]
TABLE_B = [
    rule(f"tcp/8080 uid={ALICE}"),
    rule(f"tcp/8081 uid={BOB}"),
    rule(f"tcp/81 uid={BOB}"),
    rule(f"sctp/8082 uid={ALICE}"),
    rule(f"sctp/83 uid={ALICE}"),
]
# bind -> what table A, table B and no table give each user (root: always OK).
OK, NO = "OK", "EACCES"
EXPECTED = {
    "alice": {
        "tcp4/8080": (OK, OK, OK),
        "tcp6/8081": (OK, NO, OK),
        "udp4/53": (OK, NO, NO),
        "tcp4/81": (NO, NO, NO),
        "sctp4/8082": (OK, OK, OK),
        "sctp4/83": (OK, OK, NO),
    },
    "bob": {
        "tcp4/8080": (NO, NO, OK),
        "tcp6/8081": (NO, OK, OK),
        "udp4/53": (NO, NO, NO),
        "tcp4/81": (NO, OK, NO),
        "sctp4/8082": (NO, NO, OK),
        "sctp4/83": (NO, NO, NO),
    },
}
BINDS = [key.split("/") for key in EXPECTED["alice"]]
# process -> (uid or None for root, threads, first loopback host)
WORKERS = {"alice": (ALICE, 3, 0), "bob": (BOB, 3, 3), "root": (None, 2, 6)}


class Swapper:
    """Swaps the table between A and B as fast as the kernel takes it.

    Each REPLACE is encoded once, by portctl's own replace_messages() (the
    chunk Client.replace() sends), and sent again and again on a raw generic
    netlink socket: encoding it for every swap would make the swaps, not the
    kernel, the slow part under TCG.
    """

    def __init__(self):
        with Client() as c:
            family = c.sock.prid
        self.messages = []
        for table in (TABLE_A, TABLE_B):
            ((_, body),) = replace_messages(table)  # one chunk: a whole table
            self.messages.append(bytearray(frame(body, family, 0)))
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
        self.sock.bind((0, 0))
        self.seq = 0

    def swap(self):
        """One REPLACE; OSError if the kernel refused it (or the module went)."""
        self.seq += 1
        msg = self.messages[self.seq % 2]
        struct.pack_into("=I", msg, 8, self.seq)
        self.sock.send(msg)
        reply = self.sock.recv(65536)
        kind, err = struct.unpack_from("=H", reply, 4)[0], struct.unpack_from("=i", reply, 16)[0]
        if kind != 2 or err != 0:  # NLMSG_ERROR with 0: the ack
            raise OSError(-err, f"REPLACE refused: {os.strerror(-err)}")

    def close(self):
        self.sock.close()


def start_worker(uid, threads, first):
    spec = {"threads": threads, "count": BINDS_PER_THREAD, "binds": BINDS, "first": first}
    argv = ["/usr/bin/python3", "-c", WORKER, json.dumps(spec)]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def insmod():
    subprocess.run(["insmod", str(MODULE)], check=True)


def rmmod():
    """rmmod, retried while a bind holds the module (an SCTP grant in flight)."""
    for _ in range(50):
        if subprocess.run(["rmmod", "portowners"], capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError("rmmod portowners kept failing")


@pytest.fixture
def stress_module():
    if not Path("/sys/module/sctp").exists():
        pytest.skip(f"kernel {os.uname().release} has no sctp module")
    unload_module()
    insmod()
    yield
    if not module_loaded():
        insmod()
    with Client() as c:
        c.flush()


def listen_loop(stop: threading.Event, heard: list[int], joined: threading.Event) -> None:
    """Count events until stopped; join again whenever the module came back."""
    while not stop.is_set():
        try:
            with Listener(("denials", "grants")) as listener:
                joined.set()
                for _ in listener.events(0.2):
                    heard[0] += 1
        except OSError:  # no family while the module is away
            time.sleep(0.05)


def test_binds_during_10000_swaps_and_reloads_see_only_old_or_new_table(stress_module):
    stop = threading.Event()
    heard = [0]
    joined = threading.Event()
    listener = threading.Thread(target=listen_loop, args=(stop, heard, joined))
    listener.start()
    # The listener has joined and table A is in before the first bind: the
    # workers meet the swaps from their start, not only an empty module (a
    # run where the swaps began late saw no table at all and heard nothing).
    swapper: Swapper | None = None
    try:
        assert joined.wait(300), "the listener could not join the event groups"
        swapper = Swapper()
        swapper.swap()
    except BaseException:
        stop.set()
        listener.join()
        raise
    swaps = 1
    procs = {name: start_worker(*w) for name, w in WORKERS.items()}
    reloads: list[float] = []

    def reload_loop():
        # Spread over the storm: one cycle a second until RELOADS are done.
        while len(reloads) < RELOADS and not stop.wait(1):
            t0 = time.monotonic()
            rmmod()
            insmod()
            reloads.append(time.monotonic() - t0)

    reloader = threading.Thread(target=reload_loop)
    reloader.start()
    failed = 0
    t0 = time.monotonic()

    def storm_on() -> bool:
        """SWAPS at least, then on (200 a second) while the module is being
        reloaded or a worker binds: the swaps take seconds, the reloads most
        of a minute, and an empty table after a reload must not be all the
        binds meet."""
        if swaps < SWAPS:
            return True
        time.sleep(0.005)
        return reloader.is_alive() or any(p.poll() is None for p in procs.values())

    try:
        while storm_on():
            try:
                swapper = swapper or Swapper()
                try:
                    while storm_on():
                        swapper.swap()
                        swaps += 1
                finally:
                    swapper.close()
                    swapper = None
            except (PortownersError, OSError):
                failed += 1  # the module was away: try again shortly
                time.sleep(0.01)
    finally:
        stop.set()
        reloader.join()
    swap_time = time.monotonic() - t0
    seen = {}
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=1200)
            assert proc.returncode == 0, name
            seen[name] = json.loads(out)
    finally:
        listener.join()
    report(
        f"stress: {swaps} swaps in {swap_time:.1f} s ({failed} refused while the module "
        f"was away), {len(reloads)} reloads, {BINDS_PER_THREAD} binds x 8 threads, "
        f"{heard[0]} events heard: {seen}"
    )
    assert heard[0] > 0
    assert len(reloads) == RELOADS
    # Binds that met a table, not only the module away or empty: outcomes
    # "no table" would not give. None means the swaps missed the binds.
    ruled = sum(
        n
        for name, outcomes in seen.items()
        if name in EXPECTED
        for key, counts in outcomes.items()
        for outcome, n in counts.items()
        if outcome != EXPECTED[name][key][2]
    )
    assert ruled > 0, "no bind met table A or B"
    total = 0
    for name, outcomes in seen.items():
        for key, counts in outcomes.items():
            allowed = set(EXPECTED[name][key]) if name in EXPECTED else {OK}
            assert set(counts) <= allowed, (name, key, counts)
            total += sum(counts.values())
    assert total == 8 * BINDS_PER_THREAD
