"""
test_concurrency.py - many clients at once: 100 concurrent connections each
sending 5 messages; every message is delivered exactly once.
"""

import smtplib
import threading

from tern_harness import count_by_msgid, make_message, send_on, tf

SENDER = "sender@example.com"
NCONN, NMSG = 100, 5


def client(port, k, barrier, errors, qids, lock):
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="c%d.test" % k, timeout=tf(60))
        try:
            s.ehlo()
            barrier.wait(tf(60))  # all 100 sessions open at the same time
            for i in range(NMSG):
                mid = "<conc-%03d-%d@test.example>" % (k, i)
                rcpt = "alice@localhost" if (k + i) % 2 == 0 else "bob@localhost"
                q = send_on(s, [rcpt], SENDER, make_message(subject="c %d %d" % (k, i),
                                                          msgid=mid, to=rcpt))
                with lock:
                    qids.append(q)
            s.quit()
        finally:
            s.close()
    except Exception as e:  # noqa: BLE001 - reported by the test
        with lock:
            errors.append("client %d: %r" % (k, e))


def test_100_concurrent_connections(make_tern):
    t = make_tern(config={"max_sessions_per_ip": "200"}).start()
    barrier = threading.Barrier(NCONN)
    errors, qids, lock = [], [], threading.Lock()
    threads = [threading.Thread(target=client, args=(t.port, k, barrier, errors, qids, lock))
               for k in range(NCONN)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(tf(120))
    assert not errors, errors[:10]
    assert len(qids) == NCONN * NMSG
    assert len(set(qids)) == len(qids), "queue IDs not unique"
    half = NCONN * NMSG // 2
    t.wait_delivered("alice@localhost", half, timeout=60)
    t.wait_delivered("bob@localhost", half, timeout=60)
    t.wait_queue_empty(timeout=30)
    counts = count_by_msgid(t.messages("alice@localhost") + t.messages("bob@localhost"))
    assert len(counts) == NCONN * NMSG
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
