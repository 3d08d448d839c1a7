"""
test_milter.py - the filter stage (src/filter/, issue 12): tern as a milter
client, against the scriptable Python milter of milter_peer.py (every
stage, macro and action; chains; a milter that hangs, is down or sends
garbage) and against the real programs (test_milter_real.py: clamd +
clamav-milter, rspamd, opendkim).
"""

import json
import re
import socket
import threading
import time

import pytest

from milter_peer import (ACCEPT, CONTINUE, DISCARD, REJECT, SMFIF_ALL, SMFIP_NR_HDR, SMFIP_SKIP, SKIP,
                         TEMPFAIL, MilterPeer, addheader, addrcpt, addrcpt_par, chgfrom,
                         chgheader, delrcpt, insheader, pkt, quarantine, replbody, replycode)
from tern_harness import RUN_AS, free_port, make_cert, make_message, open_for, run_tool, tf, Mail
from test_auth import passwd

import smtplib


@pytest.fixture
def peers():
    made = []

    def factory(*a, **kw):
        p = MilterPeer(*a, **kw).start()
        made.append(p)
        return p

    yield factory
    for p in made:
        p.stop()


def milter_tern(make_tern, *milters, listen_milters=None, **config):
    cfg = {"milter": "\n".join("milter = %s" % m for m in milters)}
    # "milter" repeats: the harness writes "key = value" lines, so the
    # first line's "milter = " comes from the key itself
    cfg["milter"] = cfg["milter"][len("milter = "):]
    cfg["smtp_milters"] = listen_milters or ", ".join(m.split()[0] for m in milters)
    cfg.update(config)
    return make_tern(config=cfg).start()


def send_raw(t, rcpts, sender="sender@example.com", msg=None):
    """(code, text) of the final reply; raises nothing for refusals"""
    s = t.smtp()
    try:
        s.ehlo()
        code, resp = s.mail(sender)
        if code != 250:
            return code, resp.decode()
        ok = 0
        for r in rcpts:
            c, resp = s.rcpt(r)
            if c == 250:
                ok += 1
            elif len(rcpts) == 1:
                return c, resp.decode()
        code, resp = s.data(msg or make_message(to=rcpts[0]))
        return code, resp.decode()
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def test_stages_macros_and_order(make_tern, peers):
    p = peers("m1", protocol=SMFIP_SKIP)
    t = milter_tern(make_tern, p.spec())
    qid = t.send("alice@localhost", mail_options=("BODY=8BITMIME",))
    t.wait_delivered("alice@localhost", 1)
    s = p.sessions[0]
    stages = [x for x in s.stages() if x not in ("header",)]
    assert stages == ["optneg", "connect", "helo", "mail", "rcpt", "data", "eoh", "body", "eom",
                      "quit"], s.stages()
    # OPTNEG: version 6, every action and protocol step offered
    ver, act, proto = __import__("struct").unpack(">III", s.cmds[0][1])
    assert ver == 6 and act == SMFIF_ALL and proto & 0x1FFFFF == 0x1FFFFF
    conn = dict(s.cmds)["connect"]
    assert conn.startswith(b"unknown\x004") and conn.endswith(b"127.0.0.1\x00")
    assert dict(s.cmds)["helo"] == b"client.test\x00"
    assert dict(s.cmds)["mail"] == b"<sender@example.com>\x00BODY=8BITMIME\x00"
    assert dict(s.cmds)["rcpt"] == b"<alice@localhost>\x00"
    c = s.macros["C"]
    assert c["j"] == "tern.test" and c["{client_addr}"] == "127.0.0.1"
    assert c["{client_name}"] == "unknown" and c["_"] == "unknown [127.0.0.1]"
    assert int(c["{client_port}"]) > 0 and c["v"].startswith("tern ")
    assert c["{daemon_name}"] == "tern-smtp"
    assert s.macros["M"]["i"] == qid and s.macros["M"]["{mail_addr}"] == "sender@example.com"
    assert s.macros["R"]["{rcpt_addr}"] == "alice@localhost"
    assert s.macros["R"]["{rcpt_host}"] == "localhost"
    assert s.macros["E"]["i"] == qid
    # headers as received: tern's Received first, folds as LF, no leading space
    names = [h[0] for h in s.headers]
    assert names[0] == "Received" and "Subject" in names
    assert s.headers[0][1].startswith("from client.test ([127.0.0.1])\n\tby tern.test")
    assert re.search(r"%s: milter=m1 stage=eom verdict=accept session=S\d+" % qid, t.log)


def test_symlist_macros(make_tern, peers):
    # SETSYMLIST: the milter picks the macros of a stage
    p = peers("m1", symlist={2: "{mail_addr} {client_addr}", 5: "i j"})
    t = milter_tern(make_tern, p.spec())
    qid = t.send("alice@localhost")
    s = p.sessions[0]
    assert s.macros["M"] == {"{mail_addr}": "sender@example.com", "{client_addr}": "127.0.0.1"}
    assert s.macros["E"] == {"i": qid, "j": "tern.test"}


def test_big_body_in_chunks_unchanged(make_tern, peers):
    p = peers("m1")
    t = milter_tern(make_tern, p.spec(), message_size_limit="10M")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789\r\n"
    body = line * (5 * 1024 * 1024 // len(line) + 1)
    msg = make_message(body="") + body
    t.send("alice@localhost", msg=msg)
    t.wait_delivered("alice@localhost", 1, timeout=20)
    s = p.sessions[0]
    assert bytes(s.body) == body
    assert len(s.body_chunks) >= 80 and max(s.body_chunks) <= 65535
    assert open(t.messages("alice@localhost")[0], "rb").read().endswith(b"\n\n" + body.replace(b"\r\n", b"\n"))


def test_skip_rest_of_body(make_tern, peers):
    p = peers("m1", protocol=SMFIP_SKIP, body=lambda s, d: [pkt(SKIP)])
    t = milter_tern(make_tern, p.spec(), message_size_limit="10M")
    t.send("alice@localhost", msg=make_message(body="x" * 500 + "\r\n") * 400)
    t.wait_delivered("alice@localhost", 1)
    assert p.sessions[0].body_chunks == [p.sessions[0].body_chunks[0]]


def test_header_body_envelope_changes(make_tern, peers):
    def eom(s, d):
        return [addheader("X-Added", "added value"),
                chgheader(1, "Subject", "changed subject"),
                chgheader(1, "X-Remove-Me", ""),
                insheader(0, "X-Top", "at the top"),
                replbody(b"replaced body\r\nsecond line\r\n"),
                addrcpt("<bob@localhost>"),
                addrcpt_par("<carol@localhost>", "NOTIFY=NEVER"),
                delrcpt("<alice@localhost>"),
                chgfrom("<changed@example.com>"),
                pkt(CONTINUE)]
    p = peers("m1", eom=eom)
    t = milter_tern(make_tern, p.spec())
    msg = make_message(subject="original", headers=["X-Remove-Me: please"])
    qid = t.send("alice@localhost", msg=msg)
    t.wait_delivered("bob@localhost", 1)
    t.wait_delivered("carol@localhost", 1)
    t.wait_queue_empty()
    assert t.messages("alice@localhost") == []
    m = Mail(t.messages("bob@localhost")[0])
    raw = m.path.read_bytes()
    assert m.get("X-Added") == "added value"
    assert m.get("Subject") == "changed subject"
    assert m.get("X-Remove-Me") is None
    assert m.get("Return-Path") == "<changed@example.com>"
    # inserted at the top of the message's header (after what delivery prepends)
    hdr = raw.split(b"\n\n")[0]
    assert hdr.index(b"X-Top: at the top") < hdr.index(b"Received: from client.test")
    assert raw.split(b"\n\n", 1)[1] == b"replaced body\nsecond line\n"
    log = t.log
    assert re.search(r"%s: milter=m1 changes headers=4 body=replaced envelope=4" % qid, log)
    assert "%s: milter=m1 recipient deleted to=<alice@localhost>" % qid in log
    assert "%s: milter=m1 sender changed from=<sender@example.com> to=<changed@example.com>" % qid in log
    # one queue file write: one "accepted" line, with the final recipients
    assert re.search(r"%s: accepted .*nrcpt=2" % qid, log)


def test_refusals_at_each_stage(make_tern, peers):
    def rcpt(s, d):
        if b"bob" in d:
            return [pkt(REJECT)]
        if b"carol" in d:
            return [pkt(TEMPFAIL)]
        return [pkt(CONTINUE)]

    def mail(s, d):
        return [replycode("550 5.7.26 sender refused by policy")] if b"spam" in d else [pkt(CONTINUE)]

    def eom(s, d):
        return [replycode("554-5.7.1 first line\r\n554 5.7.1 second line")]
    p = peers("m1", rcpt=rcpt, mail=mail, eom=eom)
    t = milter_tern(make_tern, p.spec())
    c = t.client()
    c.read_greeting()
    c.ehlo()
    r = c.cmd("MAIL FROM:<spam@example.com>")
    assert r.code == 550 and r.lines == ["550 5.7.26 sender refused by policy"], r
    assert c.cmd("MAIL FROM:<ok@example.com>").code == 250
    r = c.cmd("RCPT TO:<bob@localhost>")
    assert r.code == 550 and r.lines[0].startswith("550 5.7.1 "), r
    r = c.cmd("RCPT TO:<carol@localhost>")
    assert r.code == 451 and r.lines[0].startswith("451 4.7.1 "), r
    assert c.cmd("RCPT TO:<alice@localhost>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(make_message() + b".\r\n")
    r = c.reply()
    assert r.code == 554 and r.lines == ["554-5.7.1 first line", "554 5.7.1 second line"], r
    assert c.cmd("QUIT").code == 221
    c.close()
    time.sleep(0.3)
    assert t.queue_files() == []
    assert "abort" in p.sessions[0].stages()


def test_discard(make_tern, peers):
    p = peers("m1", eom=lambda s, d: [pkt(DISCARD)])
    t = milter_tern(make_tern, p.spec())
    qid = t.send("alice@localhost")  # 250 all the same
    t.wait_log(r"%s: discarded session=S\d+ client=127\.0\.0\.1 from=<sender@example\.com> \(m1\)" % qid)
    time.sleep(0.3)
    assert t.messages("alice@localhost") == [] and t.queue_files() == []


def test_quarantine_hold_and_release(make_tern, peers):
    p = peers("m1", eom=lambda s, d: [quarantine("looks like a virus"), pkt(ACCEPT)])
    t = milter_tern(make_tern, p.spec())
    qid = t.send("alice@localhost")
    t.wait_log(r"%s: quarantined \(held\) reason=\"looks like a virus \(milter m1\)\"" % qid)
    time.sleep(0.5)
    assert t.messages("alice@localhost") == []
    data = json.loads(run_tool(t, "queue", "list", "--json").stdout)
    assert data["messages"][0]["queue_id"] == qid and data["messages"][0]["held"] is True
    assert data["messages"][0]["held_reason"] == "quarantined: looks like a virus (milter m1)"
    assert "HELD (quarantined: looks like a virus (milter m1))" in run_tool(t, "queue", "list").stdout
    out = run_tool(t, "mailq").stdout
    assert re.search(r"^%s! .*\n\(quarantined: looks like a virus \(milter m1\)\)$" % qid, out, re.M), out
    assert "held: yes (quarantined: looks like a virus (milter m1))" in run_tool(t, "queue", "show", qid).stdout
    assert "released" in run_tool(t, "queue", "release", qid).stdout
    run_tool(t, "queue", "flush")
    t.wait_delivered("alice@localhost", 1)


def test_chain_sees_previous_changes(make_tern, peers):
    p1 = peers("m1", eom=lambda s, d: [addheader("X-First", "one"),
                                        replbody(b"body from m1\r\n"), pkt(ACCEPT)])
    p2 = peers("m2", eom=lambda s, d: [addheader("X-Second", "two"), pkt(ACCEPT)])
    t = milter_tern(make_tern, p1.spec(), p2.spec())
    t.send("alice@localhost")
    t.wait_delivered("alice@localhost", 1)
    s2 = p2.sessions[0]
    assert ("X-First", "one") in s2.headers
    assert bytes(s2.body) == b"body from m1\r\n"
    m = Mail(t.messages("alice@localhost")[0])
    assert m.get("X-First") == "one" and m.get("X-Second") == "two"
    # a reject from the second ends it; the first's changes are not kept
    p2.handlers["eom"] = lambda s, d: [pkt(REJECT)]
    code, text = send_raw(t, ["alice@localhost"])
    assert code == 550 and text.startswith("5.7.1"), (code, text)


def test_per_listener_milters(make_tern, peers, tmp_path):
    p1 = peers("m1")
    p2 = peers("m2")
    # a submission listener needs TLS and a password file (check-config says so)
    cert, key = make_cert(tmp_path)
    t = make_tern(config={"milter": p1.spec() + "\nmilter = " + p2.spec(),
                          "smtp_milters": "m1", "submission_milters": "m2",
                          "tls_cert": str(cert), "tls_key": str(key),
                          "auth_users": str(tmp_path / "users"),
                          "listen": "127.0.0.1:0 submission"})
    assert passwd(t, "add", "u@example.com", password="a long password").returncode == 0
    t.start()
    t.send("alice@localhost")
    assert len(p1.sessions) == 1 and p2.sessions == []
    port = t.port_of("submission")
    with socket.create_connection(("127.0.0.1", port), timeout=tf(5)) as s:
        assert s.recv(100).startswith(b"220")
    deadline = time.time() + tf(5)
    while not (p2.sessions and "connect" in p2.sessions[0].stages()) and time.time() < deadline:
        time.sleep(0.05)
    assert p2.sessions and "connect" in p2.sessions[0].stages()
    assert p2.sessions[0].macros["C"]["{daemon_name}"] == "tern-submission"
    assert len(p1.sessions) == 1


@pytest.mark.parametrize("action,code", [("tempfail", 451), ("reject", 550), ("accept", 250)])
def test_milter_down(make_tern, action, code):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    t = milter_tern(make_tern, "down inet:%d@127.0.0.1 default_action=%s" % (port, action))
    c = t.client()
    assert c.read_greeting().code == 220
    c.ehlo()
    r = c.cmd("MAIL FROM:<a@example.com>")
    assert r.code == (250 if action == "accept" else code), r
    if action == "tempfail":
        assert r.lines[0].startswith("451 4.7.1 "), r
    if action == "reject":
        assert r.lines[0].startswith("550 5.7.1 "), r
    c.close()
    assert re.search(r"milter=down stage=connect verdict=failed default_action=%s" % action, t.log)
    if action == "accept":
        t.send("alice@localhost")
        t.wait_delivered("alice@localhost", 1)


@pytest.mark.parametrize("mode", ["garbage", "huge"])
def test_milter_garbage(make_tern, peers, mode):
    p = peers("bad", mode=mode)
    good = peers("good")
    t = milter_tern(make_tern, p.spec(default_action="accept"), good.spec())
    t.send("alice@localhost")
    t.wait_delivered("alice@localhost", 1)
    why = "packet longer than the protocol allows" if mode == "huge" else "to the option negotiation"
    assert re.search(r"milter=bad failed: .*%s" % why, t.log, re.I), t.tail(20)
    assert len(good.sessions) == 1


def test_bad_reply_midway_tempfails(make_tern, peers):
    # a modification it did not negotiate: the milter is failed for the message
    p = peers("m1", actions=0, eom=lambda s, d: [addheader("X-No", "1"), pkt(ACCEPT)])
    t = milter_tern(make_tern, p.spec())
    code, text = send_raw(t, ["alice@localhost"])
    assert code == 451 and text.startswith("4.7.1"), (code, text)
    assert re.search(r"milter=m1 failed: addheader without negotiating it", t.log)
    assert t.queue_files() == []


def test_hung_milter_holds_only_its_session(make_tern, peers):
    def rcpt(s, d):
        return "hang" if b"bob" in d else [pkt(CONTINUE)]
    p = peers("m1", rcpt=rcpt)
    t = milter_tern(make_tern, p.spec(command_timeout="4s"), max_sessions_per_ip="100")
    result = {}

    def hung():
        c = t.client(timeout=30)
        c.read_greeting()
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.com>")
        t0 = time.time()
        result["reply"] = c.cmd("RCPT TO:<bob@localhost>")
        result["took"] = time.time() - t0
        c.close()
    th = threading.Thread(target=hung)
    th.start()
    time.sleep(0.3)
    t0 = time.time()
    errors = []

    def one(i):
        try:
            t.send("alice@localhost", subject="parallel %d" % i)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    ths = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for x in ths:
        x.start()
    for x in ths:
        x.join()
    took = time.time() - t0
    assert errors == []
    assert took < tf(3.5), took  # none waited for the hung one
    th.join(tf(20))
    r = result["reply"]
    assert r.code == 451 and r.lines[0].startswith("451 4.7.1 "), r
    assert result["took"] > 3.5
    t.wait_delivered("alice@localhost", 20)
    assert re.search(r"milter=m1 failed: timeout waiting for a reply", t.log)


def test_check_config(make_tern, tmp_path):
    t = make_tern(config={"milter": "m1 inet:1234@127.0.0.1 default_action=maybe",
                          "smtp_milters": "m1, nosuch"})
    r = run_tool(t, "check-config")
    assert r.returncode != 0
    assert "default_action is tempfail, accept or reject" in r.stderr
    assert "smtp_milters: no \"milter = nosuch ...\" line defines nosuch" in r.stderr
    t2 = make_tern(config={"milter": "m1 tcp:1234 eom_timeout=0s"})
    r = run_tool(t2, "check-config")
    assert r.returncode != 0 and "expected inet:PORT@HOST, inet:HOST:PORT or unix:PATH" in r.stderr
    for bad in ("inet:1234@bad_name!", "inet:localhost", "inet:localhost:0", "inet:[::1]:x"):
        r = run_tool(make_tern(config={"milter": "m1 " + bad}), "check-config")
        assert r.returncode != 0 and "expected inet:PORT@HOST or inet:HOST:PORT" in r.stderr, bad
    t3 = make_tern(config={"milter": "m1 unix:/run/m1.sock connect_timeout=5s eom_timeout=2m",
                           "submission_milters": "m1"})
    if RUN_AS:
        open_for(RUN_AS, t3.dir)  # check-config checks that user can reach the spool
    r = run_tool(t3, "check-config")
    assert r.returncode == 0, r.stderr


def test_connect_verdict_given_at_mail_and_helo_replycode(make_tern, peers):
    # a reject at connect is the answer to every MAIL of the session (Postfix's way)
    p = peers("m1", connect=lambda s, d: [replycode("554 5.7.1 not from there")],
              helo=lambda s, d: [replycode("550 5.7.1 bad helo")] if b"bad" in d else [pkt(CONTINUE)])
    t = milter_tern(make_tern, p.spec())
    c = t.client()
    assert c.read_greeting().code == 220
    r = c.cmd("EHLO bad.example")
    assert r.lines == ["550 5.7.1 bad helo"], r
    assert c.cmd("EHLO good.example").code == 250
    for _ in range(2):
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.lines == ["554 5.7.1 not from there"], r
    c.close()
    assert re.search(r"S\d+: milter=m1 stage=connect verdict=reject 554 5\.7\.1 not from there", t.log)


def test_no_reply_headers(make_tern, peers):
    # SMFIP_NR_HDR: header fields are sent without waiting for replies
    p = peers("m1", protocol=SMFIP_NR_HDR,
              eom=lambda s, d: [addheader("X-Seen", str(len(s.headers))), pkt(ACCEPT)])
    t = milter_tern(make_tern, p.spec())
    t.send("alice@localhost")
    t.wait_delivered("alice@localhost", 1)
    m = Mail(t.messages("alice@localhost")[0])
    assert m.get("X-Seen") == str(len(p.sessions[0].headers)) and len(p.sessions[0].headers) == 6


def test_milter_host_by_name(make_tern, peers):
    """A milter host given by name is looked up at each connection
    (uv_getaddrinfo, off the loop), its addresses tried in order: localhost
    may give ::1 first, where the milter does not listen; in Sendmail's
    inet:PORT@HOST and Postfix's inet:HOST:PORT forms."""
    p = peers("m1")
    for spec in ("m1 inet:%d@localhost" % p.port, "m1 inet:localhost:%d" % p.port,
                 "m1 inet:[127.0.0.1]:%d" % p.port):
        t = milter_tern(make_tern, spec)
        t.send("alice@localhost")
        t.wait_delivered("alice@localhost", 1)
        assert "milter=m1 failed" not in t.log, t.log
        t.stop()
    assert len(p.sessions) >= 3
    # no address of the name answers (every one is tried): the default
    # action; a name that does not resolve at all would need the machine's
    # DNS, which the tests never ask
    t = milter_tern(make_tern, "m2 inet:%d@localhost" % free_port())
    code, text = send_raw(t, ["alice@localhost"])
    assert code == 451, (code, text)
    assert re.search(r"milter=m2 failed: cannot connect", t.log), t.log
