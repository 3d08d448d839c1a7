"""
test_hostile.py - hostile mail (issue 6): relay tricks, header/command/log
injection, SMTP smuggling when relaying.

Every test runs tern with relayhost = a recording sink (peers.Sink), so
anything relayed would be seen there. The sink is *lenient* (a vulnerable
receiver): it ends DATA at any of the 2023 smuggling terminators and reads
what follows as commands, so a smuggled second message would show as a
second MAIL FROM at the sink.

  - no open relay: from 127.0.0.2 (outside mynetworks = 127.0.0.1/32), each
    trick (percent hack, source routes, quoted local parts with @, bang
    paths, trailing dots, case, IP literals, NUL / CR / LF, several
    addresses in one) is refused or delivered locally; the sink gets no
    connection at all;
  - no injection: CR/LF (raw, or xtext-encoded +0D+0A) in ESMTP parameters,
    HELO names and addresses never starts a line of their own in the log,
    in the delivered headers, or in the outbound session to the sink;
  - smuggling when relaying (tests/integration/test_smuggling.py covers
    inbound DATA to a Maildir): every variant (\\n.\\n, \\n.\\r\\n, \\r.\\r\\n,
    \\r\\n.\\r, \\r.\\r, \\r\\n.\\n, and a real CRLF.CRLF inside a BDAT chunk) by
    DATA, by BDAT and by BDAT with BODY=BINARYMIME, to a sink with and without
    CHUNKING: each message is refused or reaches the sink as exactly ONE
    message; the smuggled recipients (bob, evil@remote.example) get nothing.
"""

import re
import time

import pytest

from peers import Sink
from tern_harness import Mail, tf

TS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tern\[\d+\]: ")


@pytest.fixture
def sink():
    s = Sink(lenient=True)
    yield s
    s.close()


def relay_tern(make_tern, sink, **cfg):
    conf = {"relayhost": sink.spec, "smtp_connect_timeout": "2s",
            "smtp_command_timeout": "2s", "smtp_data_timeout": "2s",
            "smtp_data_done_timeout": "2s", "retry_min": "1s", "retry_max": "2s"}
    conf.update(cfg)
    return make_tern(config=conf).start()


def session_lines(t, source, lines):
    """Send raw command lines (bytes, each with its own line end) one by one
    and collect the replies' first lines; stops at EOF."""
    out = []
    c = t.client(source=source)
    try:
        c.read_greeting()
        for ln in lines:
            c.send(ln)
            try:
                r = c.reply()
            except (EOFError, ConnectionResetError, OSError):
                out.append(None)
                break
            out.append(r)
            if ln.upper().startswith(b"DATA") and r.code == 354:
                continue
    finally:
        c.close()
    return out


# ---------------------------------------------------------------- open relay

RELAY_TRICKS = [
    b"<user%remote.example@localhost>",
    b"<alice%remote.example@localhost>",
    b"<user%remote.example>",
    b"<@localhost:user@remote.example>",
    b"<@tern.test,@localhost:user@remote.example>",
    b"<@remote.example:alice@localhost>",
    b'<"user@remote.example"@localhost>',
    b'<"user@remote.example">',
    b'<"user%remote.example"@localhost>',
    b"<remote.example!user@localhost>",
    b"<remote.example!user>",
    b"<user@remote.example.>",
    b"<user@remote.example..>",
    b"<alice@localhost.>",
    b"<USER@REMOTE.EXAMPLE>",
    b"<ALICE@LocalHost>",
    b"<user@[127.0.0.1]>",
    b"<alice@[127.0.0.1]>",
    b"<user@[IPv6:::1]>",
    b"<user@[192.0.2.1]>",
    b"<user@[IPv6:::ffff:127.0.0.1]>",
    b"<user@remote.example@localhost>",
    b"<user@localhost@remote.example>",
    b"<alice@localhost,user@remote.example>",
    b"<alice@localhost> <user@remote.example>",
    b"<user@remote.example> NOTIFY=NEVER ORCPT=rfc822;alice@localhost",
    b"user@remote.example",
    b" <user@remote.example>",
    b"<user@remote.example >",
    b"<user@remote.example\x00@localhost>",
    b"<user@localhost\x00.remote.example>",
    b"<user@remote.example\r@localhost>",
    b"<alice@localhost\rRCPT TO:<user@remote.example>>",
    b"<\\@remote.example@localhost>",
    b"<user\\@remote.example@localhost>",
    b"<postmaster@remote.example>",
    b"<alice+user=remote.example@localhost>",
    b"<user@remote\xe2\x80\x8b.example>",
    b"<user@xn--remote-9ua.example>",
    b"<user@localhost%remote.example>",
    b"<user@localhost\tremote.example>",
]


def test_no_open_relay(make_tern, sink):
    t = relay_tern(make_tern, sink)
    outcomes = []
    accepted = []
    for i, rcpt in enumerate(RELAY_TRICKS):
        lines = [b"EHLO outside.test\r\n", b"MAIL FROM:<someone@remote.example>\r\n",
                 b"RCPT TO:" + rcpt + b"\r\n"]
        rs = session_lines(t, "127.0.0.2", lines)
        r = rs[2] if len(rs) > 2 else None
        outcomes.append((rcpt, r.lines[0] if r else "<closed>"))
        if r is None or r.code >= 300:
            assert r is None or r.code >= 400, (rcpt, r)
            continue
        # accepted: it must be delivered locally; send it to see where it goes
        accepted.append(rcpt)
        c = t.client(source="127.0.0.2")
        try:
            c.read_greeting()
            c.ehlo("outside.test")
            c.expect("MAIL FROM:<someone@remote.example>", r"^250 ")
            c.send(b"RCPT TO:" + rcpt + b"\r\n")
            assert c.reply().code == 250
            c.expect("DATA", r"^354 ")
            c.send("Subject: trick %d\r\n\r\ntrick\r\n.\r\n" % i)
            r = c.reply()
            assert r.code == 250, r
        finally:
            c.close()
    t.wait_queue_empty()
    time.sleep(tf(0.3))
    print("relay tricks from outside mynetworks: %d tried, %d accepted (delivered locally: %s)"
          % (len(RELAY_TRICKS), len(accepted), [a.decode("latin-1") for a in accepted]))
    for rcpt, line in outcomes:
        print("   %-55r -> %s" % (rcpt, line))
    assert sink.connections == 0, "the relay sink was contacted: %r" % sink.messages
    assert not re.search(r"relay=(?!local)", t.log), [
        l for l in t.log.splitlines() if re.search(r"relay=(?!local)", l)]
    assert not re.search(r"status=(deferred|bounced)", t.log)


# ---------------------------------------------------------------- injection

ATTACK = "X-Injected"


def check_log_and_sink(t, sink):
    # every log line is one of tern's: nothing an attacker sent starts a line
    bad = [l for l in t.log.split("\n") if l and not TS_LINE.match(l)]
    assert not bad, "log lines that do not start with a timestamp: %r" % bad[:5]
    assert "\r" not in t.log, "a CR in the log"
    with sink.lock:
        cmds = list(sink.commands)
        msgs = list(sink.messages)
    for c in cmds:
        assert not c.startswith(ATTACK.encode()), c
        assert b"evil" not in c.lower(), "injected into the outbound session: %r" % c
        assert b"\r" not in c, c
    for m in msgs:
        for line in re.split(rb"\r\n|\n|\r", m["data"].split(b"\r\n\r\n", 1)[0]):
            assert not line.startswith(ATTACK.encode()), (line, m["data"][:400])
    return cmds, msgs


INJECTIONS = [
    # (EHLO, MAIL, RCPT): raw CR or LF inside a command, or xtext that decodes to CRLF
    (b"EHLO evil.test\r" + ATTACK.encode() + b": helo\r\n", None, None),
    (b"EHLO evil.test\n" + ATTACK.encode() + b": helo\r\n", None, None),
    (b"EHLO evil.test " + ATTACK.encode() + b":\x0b\x0c\x1b[2Jhelo\r\n", None, None),
    (None, b"MAIL FROM:<a@remote.example> ENVID=abc+0D+0A" + ATTACK.encode()
     + b":+20envid+0D+0ARCPT+20TO:<evil@remote.example>\r\n", None),
    (None, b"MAIL FROM:<a@remote.example> ENVID=abc\r" + ATTACK.encode() + b"\r\n", None),
    (None, b"MAIL FROM:<a@remote.example> SIZE=100\rRCPT TO:<evil@remote.example>\r\n", None),
    (None, b"MAIL FROM:<a\r\n" + ATTACK.encode() + b"@remote.example>\r\n", None),
    (None, b'MAIL FROM:<"a\\\r' + ATTACK.encode() + b'"@remote.example>\r\n', None),
    (None, None, b"RCPT TO:<user@remote.example> ORCPT=rfc822;user+0D+0A"
     + b"RCPT+20TO:<evil@remote.example>\r\n"),
    (None, None, b"RCPT TO:<user@remote.example> NOTIFY=SUCCESS\r" + ATTACK.encode() + b"\r\n"),
    (None, None, b'RCPT TO:<"user\\\r\\\n' + ATTACK.encode() + b'"@remote.example>\r\n'),
    (None, None, b"RCPT TO:<user@remote.example> ORCPT=rfc822;"
     + b"a+0Aevil+0D@remote.example\r\n"),
    # controls: valid, odd parameters that must be relayed intact (xtext, RFC 3461 §4)
    (b"EHLO [127.0.0.1]\r\n", b"MAIL FROM:<a@remote.example> ENVID=abc+2B+3Dx+20y RET=HDRS\r\n",
     b"RCPT TO:<user@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+2Bx@remote.example\r\n"),
    (b"EHLO odd-name.test\r\n", None, None),
]


def test_no_injection(make_tern, sink):
    t = relay_tern(make_tern, sink)
    sent = 0
    results = []
    for i, (helo, mail, rcpt) in enumerate(INJECTIONS):
        c = t.client()
        try:
            c.read_greeting()
            r = c.cmd("EHLO client.test") if helo is None else None
            if helo is not None:
                c.send(helo)
                r = c.reply()
                results.append((helo, r.lines[0]))
            if r.code != 250:
                continue  # refused: the attack ends here
            for line, given in ((b"MAIL FROM:<a@remote.example>\r\n", mail),
                                (b"RCPT TO:<user@remote.example>\r\n", rcpt)):
                c.send(given or line)
                r = c.reply()
                if given is not None:
                    results.append((given, r.lines[0]))
                if r.code != 250:
                    break
            if r.code != 250:
                continue
            c.expect("DATA", r"^354 ")
            c.send("Subject: injection %d\r\nMessage-ID: <inj-%d@test.example>\r\n\r\n"
                   "body\r\n.\r\n" % (i, i))
            r = c.reply()
            if r.code == 250:
                sent += 1
        except (EOFError, ConnectionResetError):
            results.append(("closed", ""))
        finally:
            c.close()
    deadline = time.monotonic() + tf(15)
    while len(sink.messages) < sent:
        assert time.monotonic() < deadline, "the sink got %d of %d" % (len(sink.messages), sent)
        time.sleep(0.05)
    t.wait_queue_empty()
    for cmd, line in results:
        print("   %-70r -> %s" % (cmd, line))
    cmds, msgs = check_log_and_sink(t, sink)
    print("injection attempts: %d sessions, %d messages relayed, %d sink command lines clean"
          % (len(INJECTIONS), sent, len(cmds)))
    assert sent == 2, "the two control sessions must be relayed"
    # plus the success DSN (NOTIFY=SUCCESS) for the first, from <>
    assert len([m for m in msgs if not m["from"].startswith(b"MAIL FROM:<>")]) == 2, msgs
    # the relayed MAIL/RCPT lines carry parameters only in valid xtext
    for c in cmds:
        if c.upper().startswith((b"MAIL", b"RCPT")):
            assert all(0x20 <= b < 0x7F for b in c), c


# ---------------------------------------------------------------- smuggling when relaying

SMUGGLED = (b"MAIL FROM:<evil@x.example>\r\n"
            b"RCPT TO:<bob@localhost>\r\n"
            b"RCPT TO:<evil@remote.example>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n")

VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-lf": b"\r\n.\n",
}
# a real end-of-data line is plain data inside a BDAT chunk (RFC 3030 §2):
# relayed by DATA it must be dot-stuffed
BDAT_ONLY = {"crlf-dot-crlf": b"\r\n.\r\n"}


@pytest.mark.parametrize("chunking", [False, True], ids=["sink-data", "sink-chunking"])
def test_smuggling_when_relaying(make_tern, sink, chunking):
    sink.chunking = chunking
    t = relay_tern(make_tern, sink)
    cases = []
    for how in ("DATA", "BDAT", "BDAT-BINARYMIME"):
        variants = dict(VARIANTS)
        if how != "DATA":
            variants.update(BDAT_ONLY)
        for name, sep in sorted(variants.items()):
            cases.append((how, name, sep))
    accepted, unsupported = {}, []
    for k, (how, name, sep) in enumerate(cases):
        subject = "carrier-%d-%s-%s" % (k, how, name)
        content = (b"Subject: " + subject.encode() + b"\r\n\r\nhello" + sep + SMUGGLED
                   + b"\r\n")
        with t.client() as c:
            c.read_greeting()
            c.ehlo()
            body = " BODY=BINARYMIME" if how == "BDAT-BINARYMIME" else ""
            # a local sender: a bounce (no BINARYMIME at the sink) stays here
            r = c.cmd("MAIL FROM:<alice@localhost>%s" % body)
            if body and re.match(r"^555 5\.5\.4", r.text):
                unsupported.append((how, name))  # no BINARYMIME here: nothing to smuggle
                continue
            assert r.code == 250, r
            c.expect("RCPT TO:<user@remote.example>", r"^250 ")
            c.expect("RCPT TO:<carol@localhost>", r"^250 ")
            if how == "DATA":
                c.expect("DATA", r"^354 ")
                c.send(content + b".\r\nQUIT\r\n")
            else:
                c.send(b"BDAT %d LAST\r\n" % len(content) + content + b"QUIT\r\n")
            replies = c.read_all_replies(timeout=5)
        assert replies, (how, name)
        first = replies[0]
        codes = [r.code for r in replies]
        assert first.code == 250 or 500 <= first.code < 600, (how, name, first)
        assert 354 not in codes and codes.count(250) <= 1, (how, name, codes)
        if first.code == 250:
            accepted[subject] = (how, name)
    t.wait_queue_empty(timeout=20)
    time.sleep(tf(0.3))
    cmds, msgs = check_log_and_sink(t, sink)
    with sink.lock:
        events = list(sink.events)
    lenient = [e for _, e in events if "lenient" in e]
    assert not lenient, "tern's output ended DATA early for a lenient receiver: %r" % lenient
    mails = [c for c in cmds if c.upper().startswith(b"MAIL")]
    subjects = []
    for m in msgs:
        mm = re.search(rb"^Subject: (\S+)", m["data"], re.M)
        subjects.append(mm.group(1).decode() if mm else None)
    assert "smuggled" not in subjects, subjects
    assert not any(b"evil@" in r for m in msgs for r in m["rcpts"]), msgs
    assert not any(b"evil@x.example" in c for c in mails), mails
    assert t.messages("bob@localhost") == [], "the smuggled recipient got mail"
    # every accepted message reached the sink once, whole (or bounced when
    # the sink cannot take BINARYMIME), and carol's copy is one message too
    bounced = []
    for subject, (how, name) in accepted.items():
        n = subjects.count(subject)
        if n == 0 and how == "BDAT-BINARYMIME" and not chunking:
            bounced.append(subject)
            continue
        assert n == 1, "%s (%s %s) reached the sink %d times" % (subject, how, name, n)
        data = msgs[subjects.index(subject)]["data"]
        assert b"evil" in data and b"hello" in data, data[:300]
    carol = [Mail(p).get("Subject") for p in t.messages("carol@localhost")]
    assert sorted(carol) == sorted(accepted), (carol, accepted)
    assert len(mails) == len(msgs) == len(accepted) - len(bounced), (len(mails), len(msgs))
    print("smuggling via relay (sink %s): %d variants sent, %d refused, %d relayed as one "
          "message each, %d bounced (no BINARYMIME at the sink), %d BODY=BINARYMIME "
          "refused at MAIL (555), %d sink sessions, no lenient cut"
          % ("CHUNKING" if chunking else "DATA only", len(cases),
             len(cases) - len(accepted) - len(unsupported), len(accepted) - len(bounced),
             len(bounced), len(unsupported), sink.connections))
    for subject in sorted(accepted):
        print("   relayed: %s" % subject)
