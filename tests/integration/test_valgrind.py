"""
test_valgrind.py - one short life of the daemon under valgrind's memcheck
(issue 6: "a valgrind run of a short session shows no leaks").

The daemon starts, takes a message over SMTP and one through the sendmail
command, answers a queue listing on its control socket, delivers both to a
Maildir and stops on SIGTERM; memcheck must report no error (invalid reads
or writes, uninitialised values) and no definitely-lost block. It complements
the ASan run: memcheck also sees what libuv and OpenSSL (not instrumented
for ASan) do with our memory, e.g. a handle freed before its close callback.
Not run under the ASan build (the two cannot be combined).
"""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from tern_harness import RUN_AS, TERN_BIN, open_for

pytestmark = pytest.mark.skipif(
    os.environ.get("TERN_ASAN") == "1",
    reason="valgrind cannot run an AddressSanitizer build; the normal build is checked")


def test_short_life_under_valgrind(tmp_path):
    vg = shutil.which("valgrind")
    assert vg, "valgrind is not installed (scripts/deps.sh installs it)"
    (tmp_path / "mailboxes").write_text("alice@localhost\n")
    (tmp_path / "aliases").write_text("postmaster: alice\n")
    conf = tmp_path / "tern.conf"
    conf.write_text(
        "hostname = mail.localhost\nlisten = 127.0.0.1:0\n"
        "spool_dir = %s\nmaildir_base = %s\nmailboxes = %s\naliases = %s\n"
        "local_socket = %s\nmynetworks = 127.0.0.1/32\n"
        # valgrind 3.19 does not know seccomp(2) (nor Landlock's calls), so
        # the filter cannot be installed under it (docs/security.md)
        "sandbox = no\n" % (
            tmp_path / "spool", tmp_path / "mail", tmp_path / "mailboxes",
            tmp_path / "aliases", tmp_path / "tern.sock"))
    if RUN_AS:  # started as root, it binds, then runs as an unprivileged user
        with open(conf, "a") as f:
            f.write("user = %s\n" % RUN_AS)
        open_for(RUN_AS, tmp_path)
    log = tmp_path / "vg.log"
    with open(log, "w") as out:
        p = subprocess.Popen([vg, "--leak-check=full", "--errors-for-leak-kinds=definite",
                              "--error-exitcode=9", TERN_BIN, "-c", str(conf), "run"],
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            text = log.read_text(errors="replace")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) mode=smtp", text)
            if m and "started" in text:
                port = int(m.group(1))
                break
            time.sleep(0.2)
        assert port, "tern did not start under valgrind:\n" + log.read_text(errors="replace")
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.sendmail("x@example.com", ["alice@localhost"], "Subject: one\r\n\r\nhello\r\n")
        r = subprocess.run([TERN_BIN, "-c", str(conf), "sendmail", "-t"],
                           input=b"To: postmaster@localhost\nSubject: two\n\nhi\n", timeout=60)
        assert r.returncode == 0
        r = subprocess.run([TERN_BIN, "-c", str(conf), "queue", "list"], capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r
        new = tmp_path / "mail" / "localhost" / "alice" / "new"
        deadline = time.time() + 60
        while time.time() < deadline and not (new.is_dir() and len(os.listdir(new)) >= 2):
            time.sleep(0.2)
        assert len(os.listdir(new)) == 2
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=120)
    text = log.read_text(errors="replace")
    assert "ERROR SUMMARY: 0 errors" in text, text[-4000:]
    assert rc == 0, text[-4000:]
