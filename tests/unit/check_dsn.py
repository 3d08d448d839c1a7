#!/usr/bin/python3
"""check_dsn.py - check that a file is a well-formed DSN (RFC 3464, RFC 6522).

Used by tests/unit/test_dsn.c: it parses the message with Python's email
package (policy.default), independently of tern's code, and exits 0 when
every check passes, 1 with the reasons on stderr otherwise.

usage: check_dsn.py FILE [--parts N] [--ret full|hdrs] [--rcpts N]
                         [--action A] [--envid E] [--orcpt TEXT] [--subject S]
"""
import argparse
import email
import email.policy
import email.utils
import re
import sys

STATUS_RE = re.compile(r"\d\.\d{1,3}\.\d{1,3}")
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}

errors = []


def check(cond, what):
    if not cond:
        errors.append(what)
    return cond


def raw_lines_ok(raw):
    """Every line ends in CRLF and has at most 998 octets (RFC 5322 2.1.1)."""
    check(raw.endswith(b"\r\n"), "message does not end in CRLF")
    for n, line in enumerate(raw.split(b"\r\n"), 1):
        if b"\r" in line or b"\n" in line:
            check(False, "line %d: bare CR or LF" % n)
            return
        if len(line) > 998:
            check(False, "line %d: %d octets" % (n, len(line)))
            return
        if b"\0" in line:
            check(False, "line %d: NUL" % n)
            return


def status_blocks_manual(raw, boundary):
    """message/global-delivery-status: Python parses it as one message, so
    take the second part's body from the raw bytes and split it into blocks
    of fields (RFC 3464 2.1, RFC 6533 6.2) here."""
    delim = b"\r\n--" + boundary.encode()
    chunks = raw.split(delim)
    if not check(len(chunks) >= 3, "cannot find part 2 in the raw message"):
        return []
    part = chunks[2]
    body = part.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in part else b""
    text = body.decode("utf-8")
    blocks = []
    for chunk in re.split(r"\r\n(?:[ \t]*\r\n)+", text):
        if chunk.strip():
            blocks.append(email.message_from_string(chunk + "\r\n\r\n", policy=email.policy.default))
    return blocks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--parts", type=int, default=3)
    ap.add_argument("--ret", choices=["full", "hdrs"])
    ap.add_argument("--rcpts", type=int)
    ap.add_argument("--action")
    ap.add_argument("--envid")
    ap.add_argument("--orcpt")
    ap.add_argument("--subject")
    a = ap.parse_args()

    with open(a.file, "rb") as f:
        raw = f.read()
    raw_lines_ok(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    # top-level header section
    for h in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        check(msg[h] is not None, "no %s header" % h)
    check(str(msg.get("Auto-Submitted", "")).lower() == "auto-replied",
          "Auto-Submitted is not auto-replied")
    if msg["Date"] is not None:
        check(msg["Date"].datetime is not None, "Date does not parse: %r" % str(msg["Date"]))
    check(re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(msg.get("Message-ID", ""))) is not None,
          "bad Message-ID %r" % str(msg.get("Message-ID")))
    check(len(getattr(msg["From"], "addresses", ())) == 1, "From is not one address")
    check(len(getattr(msg["To"], "addresses", ())) == 1, "To is not one address")

    # multipart/report (RFC 6522 3)
    if not check(msg.get_content_type() == "multipart/report",
                 "not multipart/report: %s" % msg.get_content_type()):
        return
    rtype = msg.get_param("report-type")
    check(rtype in ("delivery-status", "global-delivery-status"), "report-type %r" % rtype)
    check(msg.get_boundary() is not None, "no boundary")
    parts = msg.get_payload()
    if not check(len(parts) == a.parts, "%d parts, expected %d" % (len(parts), a.parts)):
        return
    check(parts[0].get_content_type() == "text/plain", "part 1 is %s" % parts[0].get_content_type())
    text = parts[0].get_content()
    check(len(text.strip()) > 0, "empty text part")

    # delivery status (RFC 3464 2)
    st = parts[1]
    check(st.get_content_type() == "message/" + str(rtype),
          "part 2 is %s, report-type %s" % (st.get_content_type(), rtype))
    if st.get_content_type() == "message/delivery-status":
        blocks = st.get_payload()
    else:
        blocks = status_blocks_manual(raw, msg.get_boundary())
    if not check(len(blocks) >= 2, "%d status blocks" % len(blocks)):
        return
    pm = blocks[0]
    check(str(pm.get("Reporting-MTA", "")).startswith("dns;"), "no Reporting-MTA: dns;")
    if a.envid is not None:
        check(str(pm.get("Original-Envelope-Id", "")) == a.envid,
              "Original-Envelope-Id %r != %r" % (pm.get("Original-Envelope-Id"), a.envid))
    rcpts = blocks[1:]
    if a.rcpts is not None:
        check(len(rcpts) == a.rcpts, "%d recipient blocks, expected %d" % (len(rcpts), a.rcpts))
    for i, b in enumerate(rcpts, 1):
        fr = str(b.get("Final-Recipient", ""))
        check(re.fullmatch(r"(rfc822|utf-8); ?\S+", fr) is not None,
              "recipient %d: Final-Recipient %r" % (i, fr))
        act = str(b.get("Action", ""))
        check(act in ACTIONS, "recipient %d: Action %r" % (i, act))
        if a.action:
            check(act == a.action, "recipient %d: Action %r, expected %r" % (i, act, a.action))
        status = str(b.get("Status", ""))
        check(STATUS_RE.fullmatch(status) is not None, "recipient %d: Status %r" % (i, status))
        if act == "failed":
            check(status[:1] in "45", "recipient %d: failed with Status %s" % (i, status))
        if act == "delayed":
            check(status[:1] == "4", "recipient %d: delayed with Status %s" % (i, status))
        if act in ("delivered", "relayed"):
            check(status[:1] == "2", "recipient %d: %s with Status %s" % (i, act, status))
        for f in ("Diagnostic-Code", "Remote-MTA"):
            v = b.get(f)
            if v is not None:
                check(";" in str(v), "recipient %d: %s without type: %r" % (i, f, str(v)))
    if a.orcpt is not None:
        got = [str(b.get("Original-Recipient", "")) for b in rcpts]
        check(any(a.orcpt in g for g in got), "no Original-Recipient with %r: %r" % (a.orcpt, got))

    # the original message (RFC 3461 4.3, RFC 6522 3)
    if a.parts >= 3:
        orig = parts[2]
        ct = orig.get_content_type()
        if a.ret == "full":
            if check(ct in ("message/rfc822", "message/global"), "part 3 is %s, want full" % ct):
                inner = orig.get_payload()
                inner = inner[0] if isinstance(inner, list) else inner
                if a.subject is not None and isinstance(inner, email.message.Message):
                    check(str(inner.get("Subject", "")) == a.subject,
                          "returned Subject %r" % inner.get("Subject"))
        elif a.ret == "hdrs":
            if check(ct in ("text/rfc822-headers", "message/global-headers"),
                     "part 3 is %s, want headers" % ct):
                hdrs = orig.get_payload(decode=True) or b""
                check(b"\r\n\r\n" not in hdrs, "an empty line in the returned headers")
                if a.subject is not None:
                    check(("Subject: " + a.subject).encode() in hdrs, "returned headers lack Subject")
        else:
            check(ct in ("message/rfc822", "message/global", "text/rfc822-headers",
                         "message/global-headers"), "part 3 is %s" % ct)

    for part in msg.walk():
        for d in part.defects:
            check(False, "defect in %s: %r" % (part.get_content_type(), d))


if __name__ == "__main__":
    main()
    if errors:
        for e in errors:
            print("check_dsn: " + e, file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
