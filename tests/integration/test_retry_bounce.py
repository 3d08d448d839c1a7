"""
test_retry_bounce.py - retries, expiry, bounces and other DSNs, end to end.

tern relays through relayhost = [127.0.0.1]:PORT (or a transport table) to
scripted peers (tern_harness.Peer: 250, 451 then 250, 550, drop mid-DATA,
silence) with retry_min/retry_max/queue_lifetime in seconds. DSNs go to a
local sender (alice@localhost), so they land in a Maildir where Python's
email package parses them as RFC 3464 reports.
"""

import email
import email.policy
import json
import re
import time

from tern_harness import Mail, Peer, free_port, make_message, run_tool, tf

FAST = {
    "retry_min": "1s",
    "retry_max": "2s",
    "smtp_connect_timeout": "2s",
    "smtp_command_timeout": "2s",
    "smtp_data_timeout": "2s",
    "smtp_data_done_timeout": "2s",
}
LOCAL_SENDER = "alice@localhost"


def relay_tern(make_tern, peer, **extra):
    cfg = dict(FAST)
    cfg["relayhost"] = "[127.0.0.1]:%d" % peer.port
    cfg.update(extra)
    return make_tern(config=cfg).start()


def parse(path):
    return email.message_from_bytes(Mail(path).raw, policy=email.policy.compat32)


def report_parts(msg):
    """(human text, [per-message fields, per-recipient fields...], third part) of a DSN."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[1].get_content_type() == "message/delivery-status"
    # email parses message/delivery-status into a list of header blocks
    blocks = parts[1].get_payload()
    return parts[0], blocks, parts[2] if len(parts) > 2 else None


def dsn_messages(tern, mailbox=LOCAL_SENDER):
    return [parse(p) for p in tern.messages(mailbox)]


def test_451_then_250_delivered_once(make_tern):
    with Peer("temp:1") as peer:
        t = relay_tern(make_tern, peer)
        qid = t.send("user@remote.test", sender=LOCAL_SENDER, subject="retry me")
        t.wait_log(r"%s: to=<user@remote\.test> relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d .*"
                   r"attempts=1 status=deferred \(451 4\.3\.0" % (qid, peer.port))
        t.wait_log(r"%s: to=<user@remote\.test> .*attempts=2 status=sent" % qid, timeout=15)
        t.wait_queue_empty()
        msgs = peer.wait_messages(1)
        time.sleep(0.5)
        assert len(peer.messages) == 1
        assert msgs[0][0] == LOCAL_SENDER and msgs[0][1] == ["user@remote.test"]
        assert b"Subject: retry me" in msgs[0][2]
        # delivered: no DSN
        assert t.messages(LOCAL_SENDER) == []


def test_550_one_dsn_for_all_failed(make_tern):
    with Peer("rcpt550") as peer:
        t = relay_tern(make_tern, peer)
        qid = t.send(["x@remote.test", "y@remote.test"], sender=LOCAL_SENDER,
                     subject="doomed")
        t.wait_log(r"%s: sender non-delivery notification: ([0-9A-Z]{16})" % qid)
        t.wait_queue_empty()
        files = t.wait_delivered(LOCAL_SENDER, 1)
        time.sleep(0.5)
        files = t.messages(LOCAL_SENDER)
        assert len(files) == 1, "exactly one DSN"
        raw = Mail(files[0])
        assert raw.get("Return-Path") == "<>"
        msg = parse(files[0])
        assert "MAILER-DAEMON@tern.test" in msg["From"]
        text, blocks, orig = report_parts(msg)
        per_msg, per_rcpt = blocks[0], blocks[1:]
        assert per_msg["Reporting-MTA"].startswith("dns;")
        assert len(per_rcpt) == 2
        seen = set()
        for b in per_rcpt:
            final = b["Final-Recipient"]
            m = re.match(r"rfc822;\s*(\S+)$", final)
            assert m, final
            seen.add(m.group(1))
            assert b["Action"] == "failed"
            assert re.match(r"5\.\d+\.\d+$", b["Status"]), b["Status"]
            assert b["Status"] == "5.1.1"
            diag = re.sub(r"\s+", " ", b["Diagnostic-Code"])
            assert diag.startswith("smtp;"), diag
            assert "550 5.1.1" in diag and "no such user here" in diag, diag
            assert "127.0.0.1" in b["Remote-MTA"]
        assert seen == {"x@remote.test", "y@remote.test"}
        assert orig is not None and "Subject: doomed" in orig.as_string()
        # the DSN itself was delivered locally, from <>
        t.wait_log(r"to=<alice@localhost> relay=local .*status=sent")


def test_hard_bounce_does_not_wait_for_deferred(make_tern):
    """Issue #11.3: one recipient fails permanently, two are deferred: the
    sender gets the failure DSN after that delivery round, while the other
    two are still in the queue; it lists only the failed one, once."""
    with Peer("bylocal") as peer:
        t = relay_tern(make_tern, peer, retry_min="600s", retry_max="600s")
        qid = t.send(["bad@remote.test", "later1@remote.test", "later2@remote.test"],
                     sender=LOCAL_SENDER, subject="partly doomed")
        t.wait_log(r"%s: to=<later2@remote\.test> .*status=deferred" % qid)
        t.wait_log(r"%s: sender non-delivery notification: ([0-9A-Z]{16})" % qid)
        files = t.wait_delivered(LOCAL_SENDER, 1)
        # the other two are still deferred, in the queue
        r = run_tool(t, "queue", "list", "--json")
        assert r.returncode == 0, r.stderr
        q = json.loads(r.stdout)
        msgs = [m for m in q["messages"] if m["queue_id"] == qid]
        assert len(msgs) == 1, q
        st = {r["address"]: r["status"] for r in msgs[0]["recipients"]}
        assert st == {"bad@remote.test": "reported", "later1@remote.test": "deferred",
                      "later2@remote.test": "deferred"}, st
        text, blocks, orig = report_parts(parse(files[0]))
        finals = [b["Final-Recipient"] for b in blocks[1:]]
        assert len(finals) == 1 and "bad@remote.test" in finals[0], finals
        time.sleep(0.5)
        assert len(t.messages(LOCAL_SENDER)) == 1


def test_null_sender_never_bounced(make_tern):
    with Peer("rcpt550") as peer:
        t = relay_tern(make_tern, peer)
        with t.client() as c:
            c.read_greeting()
            c.ehlo()
            c.dialogue([("MAIL FROM:<>", r"^250 "), ("RCPT TO:<x@remote.test>", r"^250 "),
                        ("DATA", r"^354 ")])
            c.send(make_message(sender="MAILER-DAEMON@elsewhere.test", to="x@remote.test")
                   + b".\r\n")
            r = c.reply()
            assert r.code == 250, r
            qid = re.search(r"queued as ([0-9A-Z]{16})", r.text).group(1)
        t.wait_log(r"%s: undeliverable bounce discarded" % qid)
        t.wait_queue_empty()
        time.sleep(0.5)
        assert "non-delivery notification" not in t.log
        # postmaster is an alias of alice: nothing there either (default: no)
        assert t.messages("alice@localhost") == []


def test_bounce_to_postmaster(make_tern):
    with Peer("rcpt550") as peer:
        t = relay_tern(make_tern, peer, bounce_to_postmaster="yes")
        with t.client() as c:
            c.read_greeting()
            c.ehlo()
            c.dialogue([("MAIL FROM:<>", r"^250 "), ("RCPT TO:<x@remote.test>", r"^250 "),
                        ("DATA", r"^354 ")])
            c.send(make_message(sender="MAILER-DAEMON@elsewhere.test", to="x@remote.test",
                                subject="a bounce") + b".\r\n")
            qid = re.search(r"queued as ([0-9A-Z]{16})", c.reply().text).group(1)
        t.wait_log(r"%s: postmaster notification of an undeliverable bounce" % qid)
        files = t.wait_delivered("alice@localhost", 1)  # postmaster: alice
        msg = parse(files[0])
        text, blocks, orig = report_parts(msg)
        assert blocks[1]["Action"] == "failed"
        assert "x@remote.test" in blocks[1]["Final-Recipient"]
        # the postmaster gets the headers only
        assert orig.get_content_type() == "text/rfc822-headers"
        t.wait_queue_empty()
        time.sleep(0.5)
        assert len(t.messages("alice@localhost")) == 1


def test_expiry_bounce(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer, queue_lifetime="3s")
        start = time.monotonic()
        qid = t.send("late@remote.test", sender=LOCAL_SENDER, subject="expires")
        t.wait_log(r"%s: to=<late@remote\.test> .*status=bounced \(4\.4\.7 message expired"
                   % qid, timeout=15)
        files = t.wait_delivered(LOCAL_SENDER, 1)
        elapsed = time.monotonic() - start
        assert elapsed >= 2.5, elapsed
        msg = parse(files[0])
        text, blocks, orig = report_parts(msg)
        assert blocks[1]["Action"] == "failed"
        assert blocks[1]["Status"] == "4.4.7"
        assert "451 4.3.0" in blocks[1]["Diagnostic-Code"]
        assert peer.rcpts >= 2  # retried before giving up
        t.wait_queue_empty()


def test_delay_warning_once_even_across_restart(make_tern):
    with Peer("rcpt451") as peer:
        t = relay_tern(make_tern, peer, delay_warning="2s", queue_lifetime="1h")
        qid = t.send("slow@remote.test", sender=LOCAL_SENDER, subject="delayed")
        t.wait_log(r"%s: sender delay notification: [0-9A-Z]{16}" % qid, timeout=15)
        files = t.wait_delivered(LOCAL_SENDER, 1)
        msg = parse(files[0])
        text, blocks, orig = report_parts(msg)
        assert blocks[1]["Action"] == "delayed"
        assert blocks[1]["Status"].startswith("4.")
        assert "Will-Retry-Until" in blocks[1]
        # still being retried, never warned again
        n = peer.rcpts
        time.sleep(tf(3))
        assert peer.rcpts > n
        assert len(t.messages(LOCAL_SENDER)) == 1
        t.restart()
        t.wait_log(r"recovered 1 messages")
        time.sleep(tf(3))
        assert len(t.messages(LOCAL_SENDER)) == 1
        assert qid in t.queue_files()
        assert len(re.findall(r"%s: sender delay notification" % qid, t.log)) == 1


def test_drop_mid_data_then_delivered(make_tern):
    with Peer("dropdata") as peer:
        t = relay_tern(make_tern, peer)
        qid = t.send("drop@remote.test", sender=LOCAL_SENDER)
        t.wait_log(r"%s: to=<drop@remote\.test> .*status=deferred \(451 4\.4\.2" % qid)
        peer.mode = "accept"
        t.wait_log(r"%s: to=<drop@remote\.test> .*status=sent" % qid, timeout=15)
        peer.wait_messages(1)
        t.wait_queue_empty()
        assert t.messages(LOCAL_SENDER) == []


def test_slow_peer_times_out_then_delivered(make_tern):
    with Peer("slow:4") as peer:
        t = relay_tern(make_tern, peer, smtp_command_timeout="1s")
        qid = t.send("slow@remote.test", sender=LOCAL_SENDER)
        t.wait_log(r"%s: to=<slow@remote\.test> .*status=deferred \(451 4\.4\.2 timeout" % qid)
        peer.mode = "accept"
        t.wait_log(r"%s: to=<slow@remote\.test> .*status=sent" % qid, timeout=15)
        peer.wait_messages(1)
        t.wait_queue_empty()


def test_dead_destination_does_not_delay_live_one(make_tern, tmp_path):
    with Peer("hang") as dead, Peer("accept") as live:
        transport = tmp_path / "transport"
        transport.write_text("dead.test smtp:[127.0.0.1]:%d\n"
                             "closed.test smtp:[127.0.0.1]:%d\n"
                             "live.test smtp:[127.0.0.1]:%d\n"
                             % (dead.port, free_port(), live.port))
        cfg = dict(FAST)
        cfg["smtp_command_timeout"] = "30s"  # the silent peer holds its slot
        cfg["transport"] = str(transport)
        t = make_tern(config=cfg).start()
        q1 = t.send(["a@dead.test", "b@closed.test", "c@live.test"], sender=LOCAL_SENDER)
        q2 = t.send("d@live.test", sender=LOCAL_SENDER)
        start = time.monotonic()
        t.wait_log(r"%s: to=<c@live\.test> .*status=sent" % q1, timeout=5)
        t.wait_log(r"%s: to=<d@live\.test> .*status=sent" % q2, timeout=5)
        assert time.monotonic() - start < tf(5)
        t.wait_log(r"%s: to=<b@closed\.test> .*status=deferred \(451 4\.4\.1" % q1)
        live.wait_messages(2)
        assert dead.connections >= 1
        # the message stays queued for the dead and the closed hosts
        assert q1 in t.queue_files()


def test_restart_keeps_the_schedule(make_tern):
    with Peer("temp:1") as peer:
        t = relay_tern(make_tern, peer, retry_min="8s", retry_max="8s")
        qid = t.send("later@remote.test", sender=LOCAL_SENDER)
        t.wait_log(r"%s: to=<later@remote\.test> .*attempts=1 status=deferred" % qid)
        deferred_at = time.monotonic()
        assert peer.rcpts == 1
        t.restart()
        t.wait_log(r"recovered 1 messages")
        # not retried before its time
        time.sleep(max(0.0, 4 - (time.monotonic() - deferred_at)))
        assert peer.rcpts == 1, "retried early after a restart"
        assert re.search(r"%s: to=" % qid, t.run_log()) is None
        t.wait_log(r"%s: to=<later@remote\.test> .*attempts=2 status=sent" % qid, timeout=15)
        assert time.monotonic() - deferred_at >= 7
        peer.wait_messages(1)
        t.wait_queue_empty()


def test_success_dsn_delivered_and_relayed(make_tern):
    with Peer("accept") as peer:
        t = relay_tern(make_tern, peer)
        with t.client() as c:
            c.read_greeting()
            c.ehlo()
            c.dialogue([("MAIL FROM:<%s> RET=HDRS" % LOCAL_SENDER, r"^250 "),
                        ("RCPT TO:<bob@localhost> NOTIFY=SUCCESS", r"^250 "),
                        ("RCPT TO:<far@remote.test> NOTIFY=SUCCESS,FAILURE", r"^250 "),
                        ("RCPT TO:<carol@localhost>", r"^250 "),
                        ("DATA", r"^354 ")])
            c.send(make_message(sender=LOCAL_SENDER, to="bob@localhost", subject="notify me")
                   + b".\r\n")
            qid = re.search(r"queued as ([0-9A-Z]{16})", c.reply().text).group(1)
        t.wait_log(r"%s: sender delivery status notification: [0-9A-Z]{16}" % qid)
        files = t.wait_delivered(LOCAL_SENDER, 1)
        t.wait_queue_empty()
        time.sleep(0.5)
        assert len(t.messages(LOCAL_SENDER)) == 1
        msg = parse(files[0])
        text, blocks, orig = report_parts(msg)
        actions = {re.sub(r"^rfc822;\s*", "", b["Final-Recipient"]): b["Action"]
                   for b in blocks[1:]}
        # carol did not ask; the remote peer offers no DSN, so we say "relayed"
        assert actions == {"bob@localhost": "delivered", "far@remote.test": "relayed"}, actions
        assert orig.get_content_type() == "text/rfc822-headers"  # RET=HDRS
