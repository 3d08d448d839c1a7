"""
test_logfile.py - log_file (docs/operations.md "Logs"): the daemon's lines
also go to a file, which SIGUSR1 reopens for logrotate. The test renames the
file while mail flows, sends SIGUSR1 (to the privileged parent, which passes
it on, as systemd's ExecReload or logrotate's postrotate would), and finds
every message's lines once, whole, in the old file or the new one, the lines
after the reopen in the new file, and the new file owned by tern's user.
"""

import os
import re
import signal
import threading
import time

from tern_harness import RUN_AS, tf

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tern\[\d+\]: ")


def wait_for(path, regex, timeout=10):
    deadline = time.monotonic() + tf(timeout)
    while time.monotonic() < deadline:
        if path.exists() and re.search(regex, path.read_text(errors="replace")):
            return
        time.sleep(0.05)
    raise AssertionError("%s never matched %r" % (path, regex))


def test_log_file_reopened_on_sigusr1_loses_no_line(make_tern):
    t = make_tern()
    logdir = t.dir / "log"
    logdir.mkdir()
    path = logdir / "tern.log"
    t.config["log_file"] = str(path)
    t.write_files()
    t.start()
    wait_for(path, r"tern \S+ started")
    assert "listening on 127.0.0.1:%d mode=smtp" % t.port in path.read_text()

    qids, errors = [], []

    def sender(n):
        try:
            for i in range(n):
                qids.append(t.send("alice@localhost", subject="m%d" % i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=sender, args=(40,))
    th.start()
    while len(qids) < 10 and th.is_alive():
        time.sleep(0.01)
    os.rename(path, logdir / "tern.log.1")
    t.signal(signal.SIGUSR1)
    wait_for(path, r"log file %s reopened \(SIGUSR1\)" % re.escape(str(path)))
    th.join()
    assert not errors, errors
    assert len(qids) == 40
    t.wait_delivered("alice@localhost", 40)
    t.stop()

    old = (logdir / "tern.log.1").read_text()
    new = path.read_text()
    for text in (old, new):
        assert text.endswith("\n")
        for line in text.splitlines():
            assert STAMP.match(line), line
    both = old + new
    for q in qids:
        assert len(re.findall(r"^.*: %s: accepted " % q, both, re.M)) == 1, q
        assert len(re.findall(r"^.*: %s: to=<alice@localhost> .*status=sent" % q, both, re.M)) == 1, q
    # the reopen line is the new file's first line, the old file ends before it
    assert "reopened (SIGUSR1)" in new.splitlines()[0]
    assert "reopened (SIGUSR1)" not in old
    assert re.search(r"accepted ", new), "no mail logged after the reopen"
    assert "stopped" in new.splitlines()[-1]
    # what stderr got, the file got too (the file begins after the privileged
    # parent's own lines)
    stderr_lines = [STAMP.sub("", x) for x in t.run_log().splitlines() if STAMP.match(x)]
    file_lines = [STAMP.sub("", x) for x in both.splitlines()]
    assert set(file_lines) <= set(stderr_lines)
    assert len([x for x in stderr_lines if ": accepted " in x]) == 40
    if RUN_AS:
        import pwd
        uid = pwd.getpwnam(RUN_AS).pw_uid
        assert path.stat().st_uid == uid
        assert (logdir / "tern.log.1").stat().st_uid == uid
    assert path.stat().st_mode & 0o777 == 0o640


def test_log_file_that_cannot_be_opened_stops_the_start(make_tern):
    t = make_tern(config={"log_file": "/nonexistent-dir/tern.log"})
    t.write_files()
    try:
        t.start(timeout=5)
    except AssertionError as e:
        assert "log_file /nonexistent-dir/tern.log" in str(e)
    else:
        t.stop()
        raise AssertionError("tern started without its log file")
