"""One table per network namespace; ids cross netlink in the caller's user namespace."""

import os
import re
import subprocess

from conftest import ALICE, BOB, bind1, client_as, rule


def test_each_namespace_has_its_own_table(po, netns):
    a, b = netns
    assert client_as(None, netns=a)["status"]["rule_count"] == 0  # starts empty
    seen = client_as(None, rule(f"tcp/8080 uid={ALICE}"), netns=a)
    assert seen["rules"] == [rule(f"tcp/8080 uid={ALICE}")._asdict()]
    client_as(None, rule(f"tcp/8080 uid={BOB}"), netns=b)
    assert bind1(BOB, "tcp4", 8080, netns=a) == "EACCES"
    assert bind1(ALICE, "tcp4", 8080, netns=a) == "OK"
    assert bind1(ALICE, "tcp4", 8080, netns=b) == "EACCES"
    assert bind1(BOB, "tcp4", 8080, netns=b) == "OK"
    assert po.rules() == []  # the initial namespace saw none of it
    assert bind1(BOB, "tcp4", 8080) == "OK"


def test_unprivileged_user_reads_but_cannot_change(po):
    po.replace([rule(f"tcp/8080 uid={ALICE}")])
    seen = client_as(BOB)
    assert seen["rules"] == [rule(f"tcp/8080 uid={ALICE}")._asdict()]
    assert seen["status"]["rule_count"] == 1
    refused = client_as(BOB, rule(f"tcp/8080 uid={BOB}"))
    assert refused["error"].startswith("NotPermitted: ")
    assert "CAP_NET_ADMIN" in refused["error"]
    assert po.rules() == [rule(f"tcp/8080 uid={ALICE}")]


def test_container_root_manages_its_own_table_in_its_own_ids(po):
    userns = ["unshare", "--user", "--map-root-user", "--net"]
    # uid 0 inside is ALICE outside; the table reads back in inside ids.
    seen = client_as(ALICE, rule("tcp/8080 uid=0"), prefix=userns)
    assert seen["rules"] == [rule("tcp/8080 uid=0")._asdict()]
    # An id with no mapping in the container cannot be named from it.
    unmapped = client_as(ALICE, rule("tcp/8080 uid=4242"), prefix=userns)
    assert "uid is not mapped in your user namespace" in unmapped["error"]
    # Root of a user namespace does not own the initial network namespace.
    outside = client_as(
        ALICE, rule("tcp/8080 uid=0"), prefix=["unshare", "--user", "--map-root-user"]
    )
    assert outside["error"].startswith("NotPermitted: ")
    assert po.rules() == []


def test_ids_read_from_another_user_namespace_are_mapped(po):
    po.replace([rule(f"tcp/8080 uid={ALICE}"), rule(f"tcp/8081 uid={BOB}")])
    # ALICE's namespace maps only her own uid (to 0): BOB shows as overflow.
    seen = client_as(ALICE, prefix=["unshare", "--user", "--map-root-user"])
    assert [r["uid"] for r in seen["rules"]] == [0, 65534]


def test_denial_log_names_the_namespace(po, netns):
    a, _ = netns
    client_as(None, rule(f"tcp/8080 uid={ALICE}"), netns=a)
    subprocess.run(["dmesg", "--clear"], check=True)
    assert bind1(BOB, "tcp4", 8080, netns=a) == "EACCES"
    inode = os.stat(f"/run/netns/{a}").st_ino  # as ls -l /proc/PID/ns/net shows it
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    assert re.search(
        rf"denied tcp/8080 to uid {BOB} \(python3\[\d+\]\) in net:\[{inode}\]: "
        rf"owned by uid {ALICE}$",
        log,
        re.M,
    ), log
