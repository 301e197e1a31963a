from conftest import ALICE, BOB, bind1, rule


def test_owner_binds_privileged_port_and_other_is_refused(po):
    assert bind1(ALICE, "tcp4", 80) == "EACCES"
    po.replace([rule(f"tcp/80 uid={ALICE}")])
    assert bind1(ALICE, "tcp4", 80) == "OK"
    assert bind1(BOB, "tcp4", 80) == "EACCES"
    assert bind1(None, "tcp4", 80) == "OK"
