"""The generic netlink interface: policies, clear refusals, atomic changes."""

import re

import pytest
from conftest import ALICE, BOB, STAFF, rule
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST

from portctl.model import PortRange, Rule
from portctl.netlink import (
    CMD_ADD_RULES,
    CMD_CHECK,
    CMD_REPLACE,
    F_MORE,
    Client,
    KernelRejected,
    rule_attrs,
)


def raw_rule(**attrs):
    return {"attrs": [[f"PORTOWNERS_RULE_A_{k.upper()}", v] for k, v in attrs.items()]}


BAD_RULES = [
    (raw_rule(proto=99, port_lo=80, uid=1), "protocol must be tcp (6), udp (17) or sctp (132)"),
    (raw_rule(proto=6, port_lo=90, port_hi=80, uid=1), "port range ends before it starts"),
    (raw_rule(proto=6, port_lo=80), "rule has no owner"),
    (raw_rule(proto=6, port_lo=80, uid=1, any=True), "a rule for any user names no uid or gid"),
    (raw_rule(proto=6, uid=1), "rule needs a protocol and a port"),
    (raw_rule(proto=6, port_lo=0, uid=1), "integer out of range"),
]


@pytest.mark.parametrize("bad,message", BAD_RULES)
def test_malformed_rule_refused_with_a_message_and_nothing_changes(po, bad, message):
    po.replace([rule(f"tcp/22 uid={ALICE}")])
    before = po.status().generation
    for cmd in (CMD_REPLACE, CMD_ADD_RULES):
        with pytest.raises(KernelRejected, match=re.escape(message)):
            po._request(cmd, [["PORTOWNERS_A_RULE", bad]])
    assert po.rules() == [rule(f"tcp/22 uid={ALICE}")]
    assert po.status().generation == before


def test_reply_only_attribute_in_request_refused(po):
    with pytest.raises(KernelRejected):
        po._request(CMD_REPLACE, [["PORTOWNERS_A_VERDICT", 1]])


def test_overlapping_rules_refused_naming_the_overlap(po):
    po.replace([rule(f"tcp/8080 uid={ALICE}")])
    with pytest.raises(KernelRejected, match="rule overlaps another rule for the same protocol"):
        po.replace([rule(f"tcp/1-100 uid={ALICE}"), rule(f"tcp/100-200 uid={BOB}")])
    with pytest.raises(KernelRejected, match="already in the table"):
        po.add([rule(f"tcp/8000-8080 uid={BOB}")])
    po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"udp/80 uid={BOB}")])  # per protocol
    assert len(po.rules()) == 2


def test_add_release_flush(po):
    po.add([rule(f"tcp/8000-8099 uid={ALICE}")])
    po.add([rule(f"udp/53 gid={STAFF}"), rule("tcp/631 any")])
    po.release([PortRange("tcp", 8050, 8050), PortRange("tcp", 8090, 8200)])
    assert po.rules() == [
        rule("tcp/631 any"),
        rule(f"tcp/8000-8049 uid={ALICE}"),
        rule(f"tcp/8051-8089 uid={ALICE}"),
        rule(f"udp/53 gid={STAFF}"),
    ]
    po.release([PortRange("tcp", 1, 65535)])
    assert po.rules() == [rule(f"udp/53 gid={STAFF}")]
    po.flush()
    assert po.rules() == []


def test_check_uses_the_kernels_decision(po):
    po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/443 gid={STAFF}"), rule("udp/53 any")])
    assert po.check(ALICE, ALICE, [], "tcp", 80).verdict == "grant"
    assert po.check(BOB, BOB, [], "tcp", 80).verdict == "deny"
    assert po.check(BOB, BOB, [], "tcp", 80).rule == rule(f"tcp/80 uid={ALICE}")
    assert po.check(BOB, BOB, [1, STAFF], "tcp", 443).verdict == "grant"
    assert po.check(BOB, STAFF, [], "tcp", 443).verdict == "grant"
    assert po.check(BOB, None, [], "tcp", 443).verdict == "deny"
    assert po.check(BOB, BOB, [], "udp", 53).verdict == "grant"
    check = po.check(BOB, BOB, [], "tcp", 81)
    assert (check.verdict, check.rule) == ("pass", None)


def test_check_refuses_incomplete_question(po):
    with pytest.raises(KernelRejected, match="check needs a uid, a protocol and a port"):
        po._request(CMD_CHECK, [["PORTOWNERS_A_UID", 1], ["PORTOWNERS_A_PROTO", 6]])


def chunk(po, offset, rules, more):
    attrs = [["PORTOWNERS_A_OFFSET", offset]]
    if more:
        attrs.append(["PORTOWNERS_A_FLAGS", F_MORE])
    po._request(CMD_REPLACE, attrs + [["PORTOWNERS_A_RULE", rule_attrs(r)] for r in rules])


def test_chunked_replace_is_one_swap(po):
    po.replace([rule(f"tcp/22 uid={ALICE}")])
    gen = po.status().generation
    chunk(po, 0, [rule(f"tcp/80 uid={ALICE}")], more=True)
    assert po.rules() == [rule(f"tcp/22 uid={ALICE}")]  # nothing yet
    chunk(po, 1, [rule(f"tcp/81 uid={BOB}")], more=False)
    assert po.rules() == [rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/81 uid={BOB}")]
    assert po.status().generation == gen + 1


def test_chunk_out_of_sequence_refused_and_dropped(po):
    chunk(po, 0, [rule(f"tcp/80 uid={ALICE}")], more=True)
    with pytest.raises(KernelRejected, match="out of sequence"):
        chunk(po, 5, [rule(f"tcp/81 uid={ALICE}")], more=False)
    with pytest.raises(KernelRejected, match="out of sequence"):
        chunk(po, 1, [rule(f"tcp/81 uid={ALICE}")], more=False)
    assert po.rules() == []


def test_replace_in_progress_blocks_others_until_its_socket_closes(po):
    other = Client()
    chunk(other, 0, [rule(f"tcp/80 uid={ALICE}")], more=True)
    with pytest.raises(KernelRejected, match="another replace of this table is in progress"):
        po.replace([rule(f"tcp/81 uid={BOB}")])
    other.close()  # abandoned: the kernel drops the half-sent table
    po.replace([rule(f"tcp/81 uid={BOB}")])
    assert po.rules() == [rule(f"tcp/81 uid={BOB}")]


def test_ids_round_trip(po):
    rules = [
        Rule("tcp", 1, 1, uid=0),
        Rule("udp", 2, 3, gid=0),
        Rule("sctp", 4, 65535, uid=4_000_000_000, gid=7),
        Rule("tcp", 2, 2, any_user=True),
    ]
    po.replace(rules)
    assert po.rules() == sorted(rules)


def test_unknown_command_refused(po):
    msg_flags = NLM_F_REQUEST | NLM_F_ACK
    with pytest.raises(KernelRejected):
        po._request(42, [], msg_flags)
