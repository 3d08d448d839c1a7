"""
test_queue_tools.py - the administrator's view: `tern queue list|show|flush|
hold|release|delete [--json]`, `tern mailq` (and tern called as mailq), the
control socket (<spool>/control.sock, mode 0600), and the read-only
fallback when the daemon is not running.

Messages are kept deferred by a scripted peer (tern_harness.Peer) behind
relayhost = [127.0.0.1]:PORT.
"""

import json
import os
import pwd
import re
import stat
import time

from tern_harness import RUN_AS, Peer, run_tool, tf

SENDER = "alice@localhost"
SLOW = {  # retries far away: a deferred message stays put
    "retry_min": "1h",
    "retry_max": "2h",
    "smtp_connect_timeout": "2s",
    "smtp_command_timeout": "2s",
    "smtp_data_timeout": "2s",
    "smtp_data_done_timeout": "2s",
}


def relay_tern(make_tern, peer, **extra):
    cfg = dict(SLOW)
    cfg["relayhost"] = "[127.0.0.1]:%d" % peer.port
    cfg.update(extra)
    return make_tern(config=cfg).start()


def deferred(t, to="far@remote.test", subject="stuck"):
    qid = t.send(to, sender=SENDER, subject=subject)
    t.wait_log(r"%s: to=<%s> .*status=deferred" % (qid, re.escape(to)))
    return qid


def tool(t, *args, ok=True):
    r = run_tool(t, *args)
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def test_control_socket_mode(tern):
    p = tern.spool / "control.sock"
    tern.wait_log(r"control socket .*control\.sock")
    st = os.stat(p)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    # made by the daemon after it dropped root (the harness runs it as nobody)
    assert st.st_uid == (pwd.getpwnam(RUN_AS).pw_uid if RUN_AS else os.geteuid())
    tern.stop()
    assert not p.exists()


def test_list_shows_deferred_with_reason(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer)
        qid = deferred(t)
        out = tool(t, "queue", "list").stdout
        assert qid in out, out
        assert re.search(r"<far@remote\.test>\s+deferred, 1 attempt, next try .*451 4\.3\.0", out), out
        assert "from <alice@localhost>" in out
        assert "-- 1 message" in out

        data = json.loads(tool(t, "queue", "list", "--json").stdout)
        assert data["count"] == 1
        m = data["messages"][0]
        assert m["queue_id"] == qid and m["sender"] == SENDER and m["held"] is False
        assert m["size"] > 0 and m["arrival"].endswith("Z")
        r = m["recipients"][0]
        assert r["address"] == "far@remote.test" and r["status"] == "deferred"
        assert r["attempts"] == 1 and r["reply"].startswith("451 4.3.0")
        assert r["next_try"] is not None and "127.0.0.1" in r["relay"]


def test_mailq_format(make_tern, tmp_path):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer)
        empty = tool(t, "mailq").stdout
        assert empty == "Mail queue is empty\n"
        qid = deferred(t)
        out = tool(t, "mailq").stdout
        lines = out.split("\n")
        assert lines[0] == "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
        assert re.match(r"^%s  +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  alice@localhost$" % qid,
                        lines[1]), lines[1]
        assert lines[2].startswith("(451 4.3.0") and lines[2].endswith(")"), lines[2]
        assert re.match(r"^ {20,}far@remote\.test$", lines[3]), lines[3]
        assert lines[4] == ""
        assert lines[5] == "-- 1 Kbytes in 1 Request.", lines[5]
        # the same through `tern queue mailq`, and as argv[0] == "mailq"
        assert tool(t, "queue", "mailq").stdout == out
        link = tmp_path / "mailq"
        link.symlink_to(os.path.abspath(t.command()[0]))
        import subprocess
        r = subprocess.run([str(link), "-c", str(t.conf_path)], capture_output=True, text=True,
                           env=t.env(), timeout=tf(30))
        assert r.returncode == 0, r.stderr
        assert r.stdout == out


def test_show(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer)
        qid = deferred(t, subject="look at me")
        out = tool(t, "queue", "show", qid).stdout
        assert "queue id: %s" % qid in out
        assert "sender: <alice@localhost>" in out
        assert "held: no" in out
        assert "Subject: look at me" in out
        assert re.search(r"^Received: from client\.test", out, re.M), out
        data = json.loads(tool(t, "queue", "show", qid.lower(), "--json").stdout)
        assert data["message"]["queue_id"] == qid
        assert "Subject: look at me\r\n" in data["headers"]
        assert "This is a test" not in data["headers"]  # headers only
        r = tool(t, "queue", "show", "0000000000000000", ok=False)
        assert r.returncode == 1 and "no such message" in r.stderr


def test_hold_release_flush(make_tern):
    with Peer("temp:1") as peer:
        t = relay_tern(make_tern, peer, retry_min="3s", retry_max="3s")
        qid = deferred(t)
        r = tool(t, "queue", "hold", qid)
        assert "held" in r.stdout
        t.wait_log(r"%s: held by the administrator" % qid)
        # held: never dispatched, though its retry time passes
        time.sleep(tf(4))
        assert peer.messages == [] and peer.rcpts == 1
        data = json.loads(tool(t, "queue", "list", "--json").stdout)
        assert data["messages"][0]["held"] is True
        assert data["messages"][0]["held_reason"] == "held by the administrator"
        assert re.search(r"^%s! .*\n\(held by the administrator\)$" % qid, tool(t, "mailq").stdout, re.M)
        assert "HELD (held by the administrator)" in tool(t, "queue", "list").stdout
        # the hold survives a restart
        t.restart()
        t.wait_log(r"%s: held \(recovered" % qid)
        time.sleep(tf(2))
        assert peer.rcpts == 1
        # release puts it back on its schedule; flush makes it due now
        out = json.loads(tool(t, "queue", "release", qid, "--json").stdout)
        assert out["ok"] is True and out["queue_id"] == qid and "released" in out["result"]
        assert "due now" in tool(t, "queue", "flush").stdout
        t.wait_log(r"%s: to=<far@remote\.test> .*status=sent" % qid, timeout=10)
        peer.wait_messages(1)
        t.wait_queue_empty()
        assert t.messages(SENDER) == []


def test_flush_one_domain(make_tern):
    with Peer("temp:2") as peer:
        t = relay_tern(make_tern, peer)
        qa = deferred(t, to="a@one.test")
        qb = deferred(t, to="b@two.test")
        out = tool(t, "queue", "flush", "ONE.test").stdout
        assert "1 recipient due now" in out, out
        t.wait_log(r"%s: to=<a@one\.test> .*status=sent" % qa)
        time.sleep(0.5)
        assert qb in t.queue_files()
        assert not re.search(r"%s: to=<b@two\.test> .*status=sent" % qb, t.log)
        assert len(peer.messages) == 1


def test_delete(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer)
        qid = deferred(t)
        out = tool(t, "queue", "delete", qid).stdout
        assert "%s: deleted" % qid in out
        assert qid not in t.queue_files()
        t.wait_log(r"%s: deleted by the administrator" % qid)
        t.wait_log(r"%s: removed" % qid)
        time.sleep(0.5)
        assert t.messages(SENDER) == []  # no bounce
        assert json.loads(tool(t, "queue", "list", "--json").stdout)["count"] == 0
        r = tool(t, "queue", "delete", qid, ok=False)
        assert r.returncode == 1 and "no such message" in r.stderr
        r = tool(t, "queue", "hold", "not-a-qid", ok=False)
        assert r.returncode == 1


def test_without_daemon(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer)
        qid = deferred(t)
        hold = tool(t, "queue", "hold", qid).stdout
        assert "held" in hold
        t.stop()
        # read-only commands read the spool
        out = tool(t, "queue", "list").stdout
        assert qid in out and "deferred" in out and "HELD" in out
        data = json.loads(tool(t, "queue", "list", "--json").stdout)
        assert data["messages"][0]["queue_id"] == qid and data["messages"][0]["held"] is True
        assert re.search(r"^%s! " % qid, tool(t, "mailq").stdout, re.M)
        assert "Subject: stuck" in tool(t, "queue", "show", qid).stdout
        # the others need the daemon
        for args in (("flush",), ("hold", qid), ("release", qid), ("delete", qid)):
            r = tool(t, "queue", *args, ok=False)
            assert r.returncode == 1, args
            assert "not running" in r.stderr, r.stderr
        assert qid in t.queue_files()


def test_bad_requests_on_the_socket(tern):
    import socket
    tern.wait_log(r"control socket .*control\.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(tern.spool / "control.sock"))
    s.sendall(b"frobnicate\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"error: unknown request")
    r = tool(tern, "queue", "bogus", ok=False)
    assert r.returncode == 2
