"""
test_disk_full.py - a full spool (issue 6).

The spool lives on a small tmpfs mounted by the test (as root; skipped
otherwise) at the harness's spool path, so tern's queue and nothing else
fills up; the Maildirs stay on the ordinary disk.

Checked:
  - tern never acknowledges what it could not store: every 250 after DATA
    names a queue file in queue/ that holds the whole content (a 250 for a
    message not fully on disk is a bug); what cannot be stored gets a 4xx
    (451 4.3.0 / 452 4.3.1), never a 5xx (the sender must retry: RFC 5321
    §4.2.5, RFC 3463 X.3.1), and the session stays usable;
  - it keeps delivering what is queued while the spool is full (status
    appends then meet ENOSPC too), each acknowledged message exactly once;
  - it accepts again once space returns;
  - with a reserve configured (queue_min_free), it says 452 4.3.1 at MAIL
    FROM (declared SIZE) and at DATA/BDAT *before* the space runs out.
"""

import hashlib
import os
import re
import subprocess
import time

import pytest

from tern_harness import Mail

SENDER = "sender@example.com"
FS_SIZE = "8m"


def mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


@pytest.fixture
def spoolfs(tmp_path):
    """A tmpfs of FS_SIZE at tmp_path/spool (the harness's spool_dir)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the spool needs root")
    d = tmp_path / "spool"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % FS_SIZE,
                        "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs (%s)" % r.stderr.strip())
    yield d
    for _ in range(50):
        if subprocess.run(["umount", str(d)], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        subprocess.run(["umount", "-l", str(d)])
    assert not mounted(d)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def big_body(i, size):
    line = ("%06d-" % i) + "x" * 90 + "\r\n"
    return line * (size // len(line))


def send_raw(c, rcpt, body, subject):
    """One transaction; returns the reply that ended it (Reply): a 452 4.3.1
    at MAIL or DATA when the spool is short of space, else the reply to the
    end of data."""
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    if r.code != 250:
        assert re.match(r"^452 4\.3\.1", r.text), r.text
        return r
    c.expect("RCPT TO:<%s>" % rcpt, r"^250 ")
    r = c.cmd("DATA")
    if r.code != 354:
        assert re.match(r"^452 4\.3\.1", r.text), r.text
        c.expect("RSET", r"^250 ")
        return r
    c.send("Subject: %s\r\nMessage-ID: <%s@test.example>\r\n\r\n%s.\r\n"
           % (subject, subject, body))
    return c.reply()


def queue_file_holds(t, qid, body):
    p = t.spool / "queue" / qid
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return None  # delivered and removed already: checked in the Maildir
    return body.encode() in data


def test_disk_full(spoolfs, make_tern, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where dave's Maildir should be\n")
    dave_dir = blocked / "dave"
    t = make_tern(extra_mailboxes=["dave@localhost %s" % dave_dir],
                  config={"retry_min": "1s", "retry_max": "2s",
                          "message_size_limit": "1M"}).start()
    assert t.spool == spoolfs
    acked = {}  # qid -> (subject, sha256 of body)
    refused = []
    sizes = [300_000, 300_000, 120_000, 40_000, 8_000, 1_000]
    i = 0
    with t.client(timeout=30) as c:
        c.read_greeting()
        c.ehlo()
        # fill: big messages first (spilled to incoming/ while received),
        # then smaller ones (one write at commit) into what is left
        for size in sizes:
            for _ in range(200):
                i += 1
                body = big_body(i, size)
                subject = "full-%d" % i
                r = send_raw(c, "dave@localhost", body, subject)
                if r.code == 250:
                    qid = re.search(r"queued as ([0-9A-Z]{16})", r.text).group(1)
                    held = queue_file_holds(t, qid, body)
                    assert held is not False, "250 for %s but queue/%s lacks its content" % (
                        subject, qid)
                    acked[qid] = (subject, hashlib.sha256(body.encode()).hexdigest())
                    continue
                refused.append((size, r.text))
                assert 400 <= r.code < 500, "no space must be a 4xx, not %r" % r.text
                assert re.match(r"^4\d\d 4\.3\.\d", r.text), r.text
                break
        # the session is still in step and usable
        c.expect("NOOP", r"^250 ")
        c.expect("RSET", r"^250 ")
    print("spool full: %d messages acked, %d refused (%s), %d bytes left"
          % (len(acked), len(refused), sorted({x[1][:40] for x in refused}),
             free_bytes(spoolfs)))
    assert len(acked) >= 15, "an 8 MB spool should take 15+ messages of 300 kB"
    assert refused, "the spool never filled"
    assert free_bytes(spoolfs) < 300_000
    assert t.running()
    assert not t.queue_files("incoming"), "refused messages left in incoming/"
    # every acked queue file is complete on disk
    for qid in acked:
        assert (t.spool / "queue" / qid).exists(), qid

    # deliveries continue from a full spool: unblock dave's Maildir
    blocked.unlink()
    t.wait_queue_empty(timeout=60)
    files = sorted((dave_dir / "new").iterdir())
    got = {}
    for p in files:
        m = Mail(p)
        subj = m.get("Subject")
        got.setdefault(subj, []).append(
            hashlib.sha256(m.body.replace(b"\n", b"\r\n")).hexdigest())
    for qid, (subject, digest) in acked.items():
        assert subject in got, "acked %s (%s) never delivered" % (subject, qid)
        assert got[subject] == [digest], "%s delivered %d times or altered" % (
            subject, len(got[subject]))
    assert len(files) == len(acked)

    # space is back: accepted again, delivered
    assert free_bytes(spoolfs) > 6 * 1024 * 1024
    qid = t.send("alice@localhost", subject="after the storm", msgid="<after@test.example>")
    t.wait_delivered("alice@localhost", 1)
    t.wait_log(r"%s: removed" % qid)
    assert t.running()


def test_452_before_space_runs_out(spoolfs, make_tern):
    t = make_tern(config={"queue_min_free": "4M", "message_size_limit": "3M"}).start()
    ballast = spoolfs / "ballast"
    ballast.write_bytes(b"\0" * (3 * 1024 * 1024))  # about 5 MB left, 1 above the reserve
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        # a declared SIZE that would eat into the reserve: 452 at once (RFC 1870 §6.1)
        c.expect("MAIL FROM:<%s> SIZE=2000000" % SENDER, r"^452 4\.3\.1")
        # room for this one
        c.expect("MAIL FROM:<%s> SIZE=10000" % SENDER, r"^250 ")
        c.expect("RCPT TO:<alice@localhost>", r"^250 ")
        # the space goes meanwhile: DATA is refused before any content
        ballast.write_bytes(b"\0" * (int(4.5 * 1024 * 1024)))
        c.expect("DATA", r"^452 4\.3\.1")
        c.expect("RSET", r"^250 ")
        # BDAT is checked the same way at its first chunk
        c.expect("MAIL FROM:<%s>" % SENDER, r"^(250|452 4\.3\.1)")
    ballast.unlink()
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<%s> SIZE=2000000" % SENDER, r"^250 ")
        c.expect("RCPT TO:<alice@localhost>", r"^250 ")
        c.expect("DATA", r"^354 ")
        c.send("Subject: fits\r\n\r\nfits\r\n.\r\n")
        assert c.reply().code == 250
    t.wait_delivered("alice@localhost", 1)
