"""Host tests: no kernel needed (the kernel is tested in tests/vm, in a VM)."""

import pytest
from fakekernel import FakeKernel
from hypothesis import settings

from portctl import cli

# Shared, noisy machines: a property test is about its answers, never its speed.
settings.register_profile("portowners", deadline=None, print_blob=True)
settings.load_profile("portowners")


# A skipped test is not a passing one: setup installs everything the host
# tests need, so a skip means a missing install step, and fails the run.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped)} host test(s) skipped; scripts/setup should have "
            "installed what they need: " + ", ".join(_skipped),
            red=True,
        )


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    """portctl's CLI talking to an in-memory fake of the module."""
    k = FakeKernel()
    monkeypatch.setattr(cli, "client_factory", k.factory)
    monkeypatch.setattr(cli, "unprivileged_port_start", lambda: 1024)
    monkeypatch.delenv("PORTOWNERS_FILE", raising=False)
    return k
