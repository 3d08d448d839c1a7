"""
test_queuealarm.py - the queue-age alarm (docs/operations.md "Queue-age
alarms"): a message deferred at a relay that refuses connections, with
queue_age_warning = 2s and queue_age_warning_repeat = 3s: one warning line
with its queue ID, age, recipient and last error once it is 2 s old, the
same again no sooner than 3 s later, and a "cleared" line once the message
is gone (deleted with `tern queue delete`). With the threshold at 0 nothing
is logged.
"""

import re
import time

from tern_harness import free_port, run_tool, tf


ALARM = r"warning: (%s): queue age alarm age=(\d+)s threshold=2s to=<far@remote\.test> attempts=(\d+) pending=1 \((.*)\)"


def test_queue_age_warning_repeats_and_clears(make_tern):
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % free_port(),
                          "retry_min": "60s", "retry_max": "60s",
                          "smtp_connect_timeout": "2s",
                          "queue_age_warning": "2s", "queue_age_warning_repeat": "3s"}).start()
    qid = t.send("far@remote.test")
    t.wait_log(r"%s: to=<far@remote\.test> .*status=deferred" % qid)
    sent = time.monotonic()
    m = t.wait_log(ALARM % qid, timeout=10)
    first = time.monotonic()
    assert int(m.group(2)) >= 2
    assert int(m.group(3)) == 1
    assert m.group(4).startswith("4"), m.group(4)  # the deferral's reply
    assert first - sent < tf(4)
    # repeated, but not more often than every 3 s
    t.wait_log(r"(%s[\s\S]*){2}" % (ALARM % qid), timeout=10)
    second = time.monotonic()
    assert second - first >= 2.5
    lines = re.findall(ALARM % qid, t.run_log())
    assert len(lines) == 2
    r = run_tool(t, "queue", "delete", qid)
    assert r.returncode == 0, r.stderr
    t.wait_log(r"queue age alarm cleared queue=empty threshold=2s", timeout=10)
    time.sleep(tf(2))
    assert len(re.findall(ALARM % qid, t.run_log())) == 2
    t.stop()


def test_queue_age_warning_off(make_tern):
    t = make_tern(config={"relayhost": "[127.0.0.1]:%d" % free_port(),
                          "retry_min": "60s", "retry_max": "60s",
                          "queue_age_warning": "0"}).start()
    qid = t.send("far@remote.test")
    t.wait_log(r"%s: to=<far@remote\.test> .*status=deferred" % qid)
    time.sleep(tf(3))
    assert "queue age alarm" not in t.run_log()
    t.stop()
