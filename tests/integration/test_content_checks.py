"""
test_content_checks.py - header_checks and body_checks (issue 12,
src/filter/content.h) end to end: one daemon with both tables, messages sent
over SMTP, each action seen in the reply, the log, the Maildir and the queue.

What is checked: REJECT (550 5.7.1 with the text), DISCARD (250, nothing
delivered), HOLD (queued held with the reason), WARN (logged, delivered),
IGNORE (the header removed), PREPEND (a header added); a folded header
matched unfolded; a rule on an attachment's filename in the MIME headers of
a base64 part; a quoted-printable body line and a base64 text part matched
decoded; a non-text part's body not matched; check-config's FILE:LINE for a
bad pattern; the rules read again on SIGHUP.
"""

import base64
import json
import re
import signal
import time

import pytest

from tern_harness import Mail, run_tool

HEADER_CHECKS = r"""# header_checks for the tests
/^Subject:.*reject me/i            REJECT Subject refused by policy
/^Subject:.*discard me/i           DISCARD
/^Subject:.*hold me/i              HOLD held for review
/^Subject:.*warn me/i              WARN just noting
/^X-Remove-Me:/                    IGNORE
/^Subject:.*tag me/i               PREPEND X-Tagged: yes
/^X-Folded: first second/          REJECT folded header matched unfolded
/^Content-(Type|Disposition):.*name="?.*\.(exe|scr)"?/i
    REJECT Attachment type refused
"""

BODY_CHECKS = r"""/^qp says caf\xe9 is open$/        REJECT QP line matched decoded
/^secret base64 payload line$/     REJECT base64 text matched decoded
/binary-marker-in-image/           REJECT must never match a non-text part
/^spammy phrase here$/             HOLD spam suspect
"""


@pytest.fixture
def ct(make_tern, tmp_path):
    (tmp_path / "header_checks").write_text(HEADER_CHECKS)
    (tmp_path / "body_checks").write_text(BODY_CHECKS)
    t = make_tern(config={"header_checks": str(tmp_path / "header_checks"),
                          "body_checks": str(tmp_path / "body_checks")})
    return t.start()


def send_raw(t, msg, rcpt="alice@localhost"):
    """DATA msg (str, LF or CRLF lines); the reply to the final dot."""
    data = msg.replace("\r\n", "\n").replace("\n", "\r\n")
    if not data.endswith("\r\n"):
        data += "\r\n"
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@example.com>").code == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + ".\r\n")
        return c.reply()


def plain(subject, body="hello\n", extra=""):
    return "From: s@example.com\nTo: alice@localhost\nSubject: %s\n%s\n%s" % (subject, extra,
                                                                           body)


def test_reject_and_discard(ct):
    r = send_raw(ct, plain("please reject me"))
    assert r.code == 550 and r.text == "550 5.7.1 Subject refused by policy", r
    ct.wait_log(r"header_checks \S+header_checks:2 action=reject text=Subject refused by policy "
                r"line=\"Subject: please reject me\"")
    r = send_raw(ct, plain("discard me now"))
    assert r.code == 250, r
    ct.wait_log(r"discarded session=")
    assert send_raw(ct, plain("an ordinary one")).code == 250
    ct.wait_delivered("alice@localhost", 1)  # only the ordinary one
    time.sleep(0.3)
    assert len(ct.messages("alice@localhost")) == 1


def test_hold_warn_ignore_prepend(ct):
    r = send_raw(ct, plain("hold me please"))
    assert r.code == 250, r
    qid = r.text.split()[-1]
    ct.wait_log(r"quarantined \(held\) reason=\"held for review \(header_checks \S+:4\)\"")
    data = json.loads(run_tool(ct, "queue", "list", "--json").stdout)
    held = [m for m in data["messages"] if m["queue_id"] == qid]
    assert held and held[0]["held"] is True, data
    assert re.fullmatch(r"quarantined: held for review \(header_checks \S+:4\)", held[0]["held_reason"]), held
    assert "HELD (quarantined: held for review (header_checks " in run_tool(ct, "queue", "list").stdout
    assert "released" in run_tool(ct, "queue", "release", qid).stdout
    run_tool(ct, "queue", "flush")
    ct.wait_delivered("alice@localhost", 1)  # released: delivered
    r = send_raw(ct, plain("warn me", extra="X-Remove-Me: bye\n"))
    assert r.code == 250, r
    ct.wait_log(r"header_checks \S+:5 action=warn text=just noting")
    ct.wait_log(r"header_checks \S+:6 action=ignore line=\"X-Remove-Me: bye\"")
    assert send_raw(ct, plain("tag me")).code == 250
    ct.wait_delivered("alice@localhost", 3)
    mails = [Mail(p) for p in ct.messages("alice@localhost")]
    assert [m for m in mails if m.get("Subject") == "hold me please"]
    warned = [m for m in mails if m.get("Subject") == "warn me"][0]
    assert warned.get("X-Remove-Me") is None
    tagged = [m for m in mails if m.get("Subject") == "tag me"][0]
    assert tagged.get("X-Tagged") == "yes"
    names = tagged.header_names
    assert names.index("X-Tagged") == names.index("Subject") - 1  # before the matched field
    assert qid


def test_folded_header_matched_unfolded(ct):
    r = send_raw(ct, plain("x", extra="X-Folded: first\n second\n"))
    assert r.code == 550 and "folded header matched unfolded" in r.text, r


def test_attachment_filename_in_base64_part(ct):
    payload = base64.encodebytes(b"MZ\x90\x00 not really a program" * 20).decode()
    msg = ("From: s@example.com\nTo: alice@localhost\nSubject: invoice\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
           "preamble\n--b1\nContent-Type: text/plain\n\nsee attached\n"
           "--b1\nContent-Type: application/octet-stream;\n\tname=\"invoice.exe\"\n"
           "Content-Transfer-Encoding: base64\n"
           "Content-Disposition: attachment;\n filename=\"invoice.exe\"\n\n"
           + payload + "--b1--\n")
    r = send_raw(ct, msg)
    assert r.code == 550 and "Attachment type refused" in r.text, r
    # the same with a harmless name goes through
    assert send_raw(ct, msg.replace("invoice.exe", "invoice.pdf")).code == 250


def test_body_decoded_qp_and_base64(ct):
    qp = ("From: s@example.com\nSubject: qp\nMIME-Version: 1.0\n"
          "Content-Type: text/plain; charset=iso-8859-1\n"
          "Content-Transfer-Encoding: quoted-printable\n\n"
          "first line\nqp says caf=E9 is =\nopen\n")
    r = send_raw(ct, qp)
    assert r.code == 550 and "QP line matched decoded" in r.text, r
    b64 = base64.encodebytes(b"hello\r\nsecret base64 payload line\r\nbye\r\n").decode()
    msg = ("From: s@example.com\nSubject: b64\nMIME-Version: 1.0\n"
           "Content-Type: multipart/alternative; boundary=zz\n\n--zz\n"
           "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64 +
           "--zz--\n")
    r = send_raw(ct, msg)
    assert r.code == 550 and "base64 text matched decoded" in r.text, r
    # a non-text part's body is not matched
    img = ("From: s@example.com\nSubject: img\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n"
           "Content-Type: image/png\n\nbinary-marker-in-image\n--zz--\n")
    assert send_raw(ct, img).code == 250


def test_check_config_bad_pattern(make_tern, tmp_path):
    (tmp_path / "hc").write_text("# ok\n/^Subject: fine/ WARN\n\n/^Subject: (unclosed/ REJECT x\n")
    t = make_tern(config={"header_checks": str(tmp_path / "hc")})
    r = run_tool(t, "check-config")
    assert r.returncode != 0
    assert "%s:4: bad pattern: missing closing parenthesis" % (tmp_path / "hc") in r.stderr, \
        r.stderr
    (tmp_path / "hc").write_text("/x/ FROB it\n")
    r = run_tool(t, "check-config")
    assert r.returncode != 0 and "hc:1: unknown action \"FROB\"" in r.stderr, r.stderr


def test_sighup_reloads_rules(ct, tmp_path):
    assert send_raw(ct, plain("brand new spam")).code == 250
    (tmp_path / "header_checks").write_text(HEADER_CHECKS + "/^Subject: brand new spam/ REJECT "
                                            "now refused\n")
    ct.signal(signal.SIGHUP)
    ct.wait_log(r"reload: applied: .*header/body checks \(9\+4 rules\)")
    r = send_raw(ct, plain("brand new spam"))
    assert r.code == 550 and "now refused" in r.text, r
    # a broken file keeps the rules in force
    (tmp_path / "header_checks").write_text("/(/ REJECT\n")
    ct.signal(signal.SIGHUP)
    ct.wait_log(r"keeping the previous header/body checks")
    assert send_raw(ct, plain("brand new spam")).code == 550
