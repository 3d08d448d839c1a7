"""
test_logsummary.py - `tern log-summary` on logs the real daemon wrote, in
both forms: a text log_file and JSON lines on stderr. The counts match what
the test sent: messages received (and their bytes), recipients delivered
locally and through a scripted relay, deferred and bounced there, RCPTs
refused, the per-domain table, the senders; --day selects a day; stdin works.
"""

import re
import socket
import subprocess

from tern_harness import TERN_BIN, Peer, tf

N_LOCAL = 5   # messages to alice@localhost from carol@one.example
N_RELAY = 2   # messages to good@, bad@, later@remote.test from dave@two.example
N_REFUSED = 3  # RCPTs refused (unknown local user)


def run_daemon(make_tern, fmt):
    with Peer("bylocal") as peer:
        t = make_tern(config={"log_format": fmt, "relayhost": "[127.0.0.1]:%d" % peer.port,
                              "retry_min": "60s", "retry_max": "60s"})
        logdir = t.dir / "log"
        logdir.mkdir()
        t.config["log_file"] = str(logdir / "tern.log")
        t.write_files()
        t.start()
        for i in range(N_LOCAL):
            t.send("alice@localhost", sender="carol@one.example", subject="local %d" % i)
        for i in range(N_RELAY):
            t.send(["good@remote.test", "bad@remote.test", "later@remote.test"],
                   sender="dave@two.example", subject="relay %d" % i)
        for i in range(N_REFUSED):
            s = socket.create_connection(("127.0.0.1", t.port), timeout=tf(10))
            f = s.makefile("rb")
            f.readline()
            for cmd in (b"EHLO client.example\r\n", b"MAIL FROM:<x@three.example>\r\n",
                        b"RCPT TO:<nobody%d@localhost>\r\n" % i, b"QUIT\r\n"):
                s.sendall(cmd)
                while True:
                    line = f.readline()
                    if not line or line[3:4] != b"-":
                        break
            s.close()
        t.wait_delivered("alice@localhost", N_LOCAL)
        t.wait_log(r"(later@remote\.test.*deferred[\s\S]*){%d}" % N_RELAY)
        t.wait_log(r"(bad@remote\.test.*bounced[\s\S]*){%d}" % N_RELAY)
        t.wait_log(r"(disconnect[^\n]*errors=1|\"errors\":\"1\"[^\n]*disconnect)[\s\S]*" * N_REFUSED)
        t.stop()
        return t, logdir / "tern.log"


def summary(*args, stdin=None):
    r = subprocess.run([TERN_BIN, "log-summary"] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def number(out, label):
    return int(re.search(r"^  %s\s+(\d+)" % label, out, re.M).group(1))


def check(out, sizes):
    # each of the 2 relayed messages makes one DSN (bad@ bounced) to
    # dave@two.example, which the relay takes: delivered too
    assert number(out, "received") == N_LOCAL + N_RELAY, out
    assert re.search(r"received\s+\d+\s+\(%d bytes\)" % sum(sizes), out), (out, sizes)
    assert number(out, "delivered") == N_LOCAL + N_RELAY + N_RELAY, out
    assert number(out, "deferred") == N_RELAY, out
    assert number(out, "bounced") == N_RELAY, out
    assert number(out, "rejected") == N_REFUSED, out
    assert number(out, "dsn") == N_RELAY, out
    assert number(out, "connections") == N_LOCAL + N_RELAY + N_REFUSED, out
    assert re.search(r"^  localhost\s+%d\s+0\s+0$" % N_LOCAL, out, re.M), out
    assert re.search(r"^  remote\.test\s+%d\s+%d\s+%d$" % (N_RELAY, N_RELAY, N_RELAY), out, re.M), out
    assert re.search(r"^  one\.example\s+%d$" % N_LOCAL, out, re.M), out
    assert re.search(r"^  carol@one\.example\s+%d$" % N_LOCAL, out, re.M), out
    assert re.search(r"^  dave@two\.example\s+%d$" % N_RELAY, out, re.M), out
    assert re.search(r"^  two\.example\s+%d\s+0\s+0$" % N_RELAY, out, re.M), out
    assert re.search(r"^  550 5\.1\.1 .*user unknown\s+%d$" % N_REFUSED, out, re.M), out


def test_log_summary_counts_what_the_daemon_logged(make_tern):
    for fmt in ("text", "json"):
        t, path = run_daemon(make_tern, fmt)
        text = path.read_text()
        if fmt == "json":
            assert text.startswith("{")
        sizes = [int(x) for x in re.findall(r"accepted session=S\S+ .*?size=(\d+)", text)]
        if fmt == "json":
            sizes = [int(x) for x in re.findall(r"\"size\":\"(\d+)\"[^\n]*\"msg\":\"\w+: accepted session=S", text)]
        assert len(sizes) == N_LOCAL + N_RELAY
        out = summary(str(path))
        check(out, sizes)
        day = re.search(r"tern log summary for (\d{4}-\d\d-\d\d)", out).group(1)
        assert out.count("tern log summary for") == 1
        # --day: that day, or nothing; stdin
        check(summary("--day", day, stdin=text), sizes)
        assert "no tern log lines for 1999-01-01" in summary("--day", "1999-01-01", str(path))
