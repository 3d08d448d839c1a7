"""
test_crash_soak.py - crash consistency under load (issue 6), the short
version that runs in make test; tests/soak/soak.py (make soak) is the long
one. Client threads send messages with unique Message-IDs while tern is
killed with SIGKILL at random moments and restarted; clients resend what got
no 250. At the end every acknowledged message has been delivered, to the
Maildirs or through a relayhost to a recording sink; duplicates are
counted and printed (run pytest with -s to see the figures).

Maildir: no copy may be delivered twice under the same queue ID (the
deterministic Maildir name, docs/queue.md). Relay: the same queue ID may
reach the sink twice (crash between the peer's 250 and the status append,
RFC 5321 §6.1), never zero times.
"""

import pytest

import soak_core
from peers import Sink
from tern_harness import ASAN

# (messages, kills): a few hundred and ~5 kills; less under ASan
LOCAL = (120, 3) if ASAN else (300, 5)
RELAY = (80, 3) if ASAN else (200, 5)


def check(res):
    f = res.figures()
    assert not res.missing, "acknowledged but never delivered: %r\n%s" % (
        res.missing[:20], res.summary())
    assert not res.acked_qid_lost, "a 250's queue ID never delivered: %r" % (
        res.acked_qid_lost[:20],)
    assert not res.unknown, res.unknown[:10]
    assert f["acked"] == f["messages"], f
    assert f["kills"] >= 1, f


def test_crash_soak_local(make_tern):
    t = make_tern(config=soak_core.soak_config("local")).start()
    n, kills = LOCAL
    res = soak_core.run(t, "local", n, kills, nthreads=8, tag="local")
    check(res)
    # the same queue file never makes two Maildir copies (docs/queue.md)
    assert res.redelivered == 0, res.summary()


@pytest.fixture
def sink():
    s = Sink(record_commands=False)
    yield s
    s.close()


def test_crash_soak_relay(make_tern, sink):
    t = make_tern(config=soak_core.soak_config("relay", sink)).start()
    n, kills = RELAY
    res = soak_core.run(t, "relay", n, kills, nthreads=8, sink=sink, tag="relay")
    check(res)
