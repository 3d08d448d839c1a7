"""
test_sandbox.py - the daemon confined (issue 6, "Privilege and files";
src/lib/sandbox.h, docs/security.md "Confinement").

The real daemon, started through the harness: /proc/PID/status shows the
seccomp filter (Seccomp: 2) and no_new_privs; with the sandbox on it still
accepts a message, delivers it to a Maildir, relays one through the outbound
path (a scripted relayhost), answers on its control socket, reloads on
SIGHUP and delivers to a mailbox added by the reload, and removes its
sockets at stop. A mailbox whose Maildir lies outside maildir_base (an
absolute path in the mailboxes table) is allowed at start; one that a
reload adds outside every allowed directory is deferred (never lost) while
Landlock is on, and delivered after a restart. "sandbox = no" leaves the
process unconfined.

Must not: depend on Landlock being there (checks that need it are skipped
when the daemon logs that it is not available).
"""

import os
import pwd
import re
import signal

import pytest

from tern_harness import Peer, run_tool

FAST = {
    "retry_min": "1s",
    "retry_max": "2s",
    "smtp_connect_timeout": "2s",
    "smtp_command_timeout": "2s",
    "smtp_data_timeout": "2s",
    "smtp_data_done_timeout": "2s",
}


def proc_status(t):
    with open("/proc/%d/status" % t.daemon_pid()) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def landlock_on(t):
    return "Landlock (ABI" in t.run_log()


def test_confined_daemon_works(make_tern):
    with Peer("accept") as peer:
        cfg = dict(FAST)
        cfg["relayhost"] = "[127.0.0.1]:%d" % peer.port
        t = make_tern(config=cfg).start()
        t.wait_log(r"tern \S+ started")  # the daemon's sandbox, not its parent's
        st = proc_status(t)
        assert st["Seccomp"] == "2", st
        assert st["NoNewPrivs"] == "1", st
        assert int(st.get("Seccomp_filters", "1")) >= 1
        if landlock_on(t):
            m = t.wait_log(r"Landlock \(ABI \d+\) allows writes only beneath (/.*)")  # the daemon's
            assert str(t.spool.resolve()) in m.group(1)
            assert str(t.mail_base.resolve()) in m.group(1)

        # local delivery: queue commit (incoming/ -> queue/), Maildir tmp/ -> new/
        t.send("alice@localhost", subject="confined local")
        t.wait_delivered("alice@localhost", 1)
        # outbound through the relayhost
        qid = t.send("user@remote.test", sender="alice@localhost", subject="confined relay")
        msgs = peer.wait_messages(1)
        assert b"Subject: confined relay" in msgs[0][2]
        t.wait_log(r"%s: to=<user@remote\.test> .*status=sent" % qid)
        t.wait_queue_empty()
        # the control socket (queue tools)
        r = run_tool(t, "queue", "list")
        assert r.returncode == 0, r.stderr

        # SIGHUP: the reload still works under the filter, and a new mailbox
        # beneath maildir_base gets its mail
        t.mailboxes.append("zed@localhost")
        t.write_tables()
        t.signal(signal.SIGHUP)
        t.wait_log(r"reloaded configuration and tables")
        t.send("zed@localhost", subject="after reload")
        t.wait_delivered("zed@localhost", 1)
        assert proc_status(t)["Seccomp"] == "2"
        assert t.running()
        # Landlock confines the threads started after it: none may run before
        assert "threads already run" not in t.log

        local_sock = t.dir / "tern.sock"
        assert local_sock.exists()
        t.stop()  # exit code 0 asserted (and the sanitizer log under ASan)
        # both sockets were removed at stop: Landlock lets it do that
        assert not (t.spool / "control.sock").exists()
        assert not local_sock.exists()


def test_maildir_outside_maildir_base(make_tern):
    t = make_tern(config=FAST)
    elsewhere = t.dir / "elsewhere"
    (elsewhere / "dave").mkdir(parents=True)
    t.mailboxes.append("dave@localhost %s" % (elsewhere / "dave" / "Maildir"))
    t.write_tables()
    t.start()
    if landlock_on(t):
        t.wait_log(r"sandbox: the Maildir of dave@localhost .* is outside spool_dir and "
                   r"maildir_base: writes allowed beneath %s" % re.escape(str(elsewhere / "dave")))
    t.send("dave@localhost", subject="elsewhere")
    new = elsewhere / "dave" / "Maildir" / "new"
    t.wait_log(r"to=<dave@localhost> .*status=sent")
    assert len(list(new.iterdir())) == 1

    # a reload names a Maildir outside every allowed directory: the message
    # waits in the queue (4.x.x, deferred), and a restart delivers it
    other = t.dir / "other"
    other.mkdir()
    if t.config.get("user"):  # the daemon's user owns it: only Landlock refuses
        pw = pwd.getpwnam(t.config["user"])
        os.chown(other, pw.pw_uid, pw.pw_gid)
    t.mailboxes.append("erin@localhost %s" % (other / "erin"))
    t.write_tables()
    t.signal(signal.SIGHUP)
    t.wait_log(r"reloaded configuration and tables")
    qid = t.send("erin@localhost", subject="outside")
    if not landlock_on(t):
        t.wait_log(r"%s: to=<erin@localhost> .*status=sent" % qid)
        return
    t.wait_log(r"sandbox: the Maildir of erin@localhost, .*, is outside the directories tern may "
               r"write to since it started: deliveries to it are deferred until tern is restarted")
    t.wait_log(r"%s: to=<erin@localhost> .*status=deferred \(4\.3\.0 maildir .*Permission denied"
               % qid)
    assert not (other / "erin").exists()
    assert qid in t.queue_files("queue")
    t.restart()
    t.wait_log(r"sandbox: the Maildir of erin@localhost .* writes allowed beneath")
    t.wait_log(r"%s: to=<erin@localhost> .*status=sent" % qid, timeout=15)
    assert "threads already run" not in t.log  # recovery starts no thread early
    assert len(list((other / "erin" / "new").iterdir())) == 1


def test_sandbox_off(make_tern):
    t = make_tern(config={"sandbox": "no"}).start()
    t.wait_log(r"sandbox = no: tern runs without")
    st = proc_status(t)
    assert st["Seccomp"] == "0", st
    assert st["NoNewPrivs"] == "1", st  # set at start-up in any case
    t.send("alice@localhost", subject="unconfined")
    t.wait_delivered("alice@localhost", 1)


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_sandbox_bad_value_refused(make_tern, value):
    t = make_tern(config={"sandbox": value})
    r = run_tool(t, "check-config")
    assert r.returncode != 0
    assert re.search(r"tern\.conf:\d+: .*sandbox.*yes or no|tern\.conf:\d+: .*yes or no",
                     r.stderr), r.stderr
