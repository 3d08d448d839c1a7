"""
test_crash.py - durability: a 250 means the message survives a crash and is
delivered exactly once; SIGTERM is a clean stop and the queue is recovered.
"""

import re
import signal
import smtplib
import threading
import time

from tern_harness import Mail, count_by_msgid, make_message, send_on, tf

SENDER = "sender@example.com"


def test_sigkill_right_after_250(tern):
    msgid = "<kill-after-250@test.example>"
    with tern.client() as c:
        c.read_greeting()
        c.ehlo()
        c.dialogue([("MAIL FROM:<%s>" % SENDER, r"^250 "),
                    ("RCPT TO:<alice@localhost>", r"^250 "),
                    ("RCPT TO:<bob@localhost>", r"^250 "), ("DATA", r"^354 ")])
        c.send(make_message(subject="kill after 250", msgid=msgid) + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        tern.kill9()
    tern.start()
    tern.wait_log(r"recovered \d+ messages")
    tern.wait_delivered("alice@localhost", 1)
    tern.wait_delivered("bob@localhost", 1)
    tern.wait_queue_empty()
    time.sleep(tf(0.3))
    for who in ("alice@localhost", "bob@localhost"):
        assert count_by_msgid(tern.messages(who)) == {msgid: 1}, who


def sender_thread(port, msgs, accepted, lock, stop):
    """Send each (msgid, bytes) on one connection, recording the 250s."""
    s = None
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=tf(20))
        s.ehlo()
        for msgid, msg in msgs:
            if stop.is_set():
                break
            send_on(s, ["alice@localhost"], SENDER, msg)
            with lock:
                accepted.add(msgid)
    except (smtplib.SMTPException, OSError, AssertionError):
        pass  # the daemon was killed under us
    finally:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def test_sigkill_during_deliveries(tern):
    n, nthreads = 200, 8
    msgs = []
    for i in range(n):
        mid = "<storm-%03d@test.example>" % i
        msgs.append((mid, make_message(subject="storm %d" % i, msgid=mid,
                                       body="message %d\r\n" % i + "filler line\r\n" * 20)))
    accepted, lock, stop = set(), threading.Lock(), threading.Event()
    threads = [threading.Thread(target=sender_thread,
                                args=(tern.port, msgs[k::nthreads], accepted, lock, stop))
               for k in range(nthreads)]
    for th in threads:
        th.start()
    # kill once deliveries are under way: some delivered, more accepted
    deadline = time.monotonic() + tf(30)
    while time.monotonic() < deadline:
        with lock:
            nacc = len(accepted)
        if nacc >= n // 2 and len(tern.messages("alice@localhost")) >= 5:
            break
        time.sleep(0.01)
    delivered_before = len(tern.messages("alice@localhost"))
    tern.kill9()
    stop.set()
    for th in threads:
        th.join(tf(30))
    with lock:
        acc = set(accepted)
    assert acc, "nothing accepted before the kill"
    tern.start()
    m = tern.wait_log(r"recovered (\d+) messages")
    tern.wait_queue_empty(timeout=60)
    time.sleep(tf(0.3))
    counts = count_by_msgid(tern.messages("alice@localhost"))
    dup = {k: v for k, v in counts.items() if v != 1}
    missing = sorted(acc - set(counts))
    assert not dup, "delivered more than once: %r" % dup
    assert not missing, "accepted (250) but never delivered: %r" % missing
    unknown = set(counts) - {mid for mid, _ in msgs}
    assert not unknown, unknown
    print("accepted %d, delivered before kill %d, recovered %s, delivered %d"
          % (len(acc), delivered_before, m.group(1), len(counts)))


def test_sigterm_clean_stop_and_recovery(make_tern, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be\n")
    dave_dir = blocked / "dave"
    t = make_tern(extra_mailboxes=["dave@localhost %s" % dave_dir],
                  config={"retry_min": "1s", "retry_max": "2s"}).start()
    qid = t.send("dave@localhost", subject="for dave", msgid="<dave-1@test.example>")
    t.wait_log(r"%s: to=<dave@localhost> .*status=deferred \(4\.\d\.\d" % qid)
    assert qid in t.queue_files()
    # an idle session gets 421 at SIGTERM
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        t.signal(signal.SIGTERM)
        r = c.reply()
        assert re.match(r"^421 4\.\d\.\d", r.text), r
        assert c.at_eof()
    t.stop()  # waits, asserts exit code 0
    t.wait_log(r"stopping")
    t.wait_log(r"stopped")
    assert qid in t.queue_files()
    blocked.unlink()
    t.start()
    t.wait_log(r"recovered 1 messages")
    t.wait_log(r"%s: to=<dave@localhost> .*status=sent" % qid, timeout=15)
    files = sorted((dave_dir / "new").iterdir())
    assert len(files) == 1
    assert Mail(files[0]).get("Message-ID") == "<dave-1@test.example>"
    t.wait_queue_empty()


def test_sigint_is_clean_too(tern):
    tern.signal(signal.SIGINT)
    tern.stop()
