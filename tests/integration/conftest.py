"""
conftest.py - pytest fixtures for tern's integration tests.

Fixtures:
  make_tern(**kw)  build a Tern (tern_harness.Tern) in the test's tmp_path (or a
                   sub-directory when called more than once); not started.
  tern             a started Tern with the default test config.
Every Tern made in a test is stopped in teardown (SIGTERM, exit code 0 asserted,
sanitizer reports looked for under TERN_ASAN=1), even when the test failed; a
failed test's report carries the tail of each daemon's log.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Each pytest session chmods its user's temp root (/tmp/pytest-of-root) back to
# 0700 when it starts, which locks the daemons of every other session running
# as nobody out of their spools ("Permission denied" in the middle of a run,
# whenever two sessions run at once, e.g. make -j2 test). So each session gets
# a base directory of its own, short (Unix socket paths are limited to 107
# octets, and pytest-xdist adds popen-gwN/ per worker); bases left by sessions
# of more than 6 hours ago go.
_tmp = Path(tempfile.gettempdir())
for _old in list(_tmp.glob("tern-pytest-*")) + list(_tmp.glob("tp-*")):
    try:
        if time.time() - _old.stat().st_mtime > 6 * 3600:
            shutil.rmtree(_old, ignore_errors=True)
    except OSError:
        pass


def pytest_configure(config):
    # xdist workers are given the controller's base plus popen-gwN
    if not config.option.basetemp and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="tp-")


import tern_harness  # noqa: E402
from tern_harness import Tern  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    terns = getattr(item, "_terns", None)
    if rep.failed and terns:
        for i, t in enumerate(terns):
            rep.sections.append(("tern log #%d (%s), last 80 lines" % (i, t.log_path),
                                 t.tail(80)))


@pytest.fixture
def make_tern(request, tmp_path):
    terns = []
    request.node._terns = terns
    Tern.registry = terns

    def factory(**kw):
        d = tmp_path if not terns else tmp_path / ("t%d" % len(terns))
        d.mkdir(parents=True, exist_ok=True)
        return Tern(d, **kw)

    yield factory

    Tern.registry = None
    errors = []
    for t in terns:
        try:
            t.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("daemon teardown: " + "\n\n".join(errors), pytrace=False)


@pytest.fixture
def tern(make_tern):
    return make_tern().start()


@pytest.fixture(scope="session")
def tern_bin():
    return tern_harness.TERN_BIN
