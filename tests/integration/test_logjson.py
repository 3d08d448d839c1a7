"""
test_logjson.py - log_format = json (docs/logging.md "JSON lines"): the same
events, run once with text lines and once with JSON lines, carry the same
fields: accepted, a recipient sent, deferred and bounced (through a scripted
relay), a rejected RCPT, connect and disconnect. Every JSON line is valid
JSON (hostile bytes: tests/unit/test_log.c) and its members are what the grammar splits out of its "msg" (the
text form), as this test's own reading of docs/logging.md finds them.
"""

import json
import re
import socket

from tern_harness import Peer, tf

KV = re.compile(r'([a-z_][a-z0-9_.-]*)=(<[^>]*>|"(?:[^"\\]|\\.)*"|\S*)')
LEVEL = re.compile(r"^(error|warning|debug): ")
ID = re.compile(r"^([0-9A-Z]{16}|S[0-9a-z]+): ")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tern\[\d+\]: ")


def parse_text(body):
    """the fields of one text line, as docs/logging.md describes them"""
    f = {}
    m = LEVEL.match(body)
    f["level"] = m.group(1) if m else "info"
    if m:
        body = body[m.end():]
    m = ID.match(body)
    if m:
        f["session" if m.group(1)[0] == "S" else "qid"] = m.group(1)
        body = body[m.end():]
    if body.endswith(")"):  # the "(...)" that closes at the end, balanced
        depth = 0
        for i in range(len(body) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(body[i], 0)
            if body[i] == "(" and depth == 0:
                if i == 0 or body[i - 1] == " ":
                    f["text"] = body[i + 1:-1]
                    body = body[:max(i - 1, 0)]
                break
    first = KV.search(body)
    event = (body[:first.start()] if first else body).strip().rstrip(":")
    if event:
        f["event"] = event
    for k, v in KV.findall(body):
        if v.startswith("<") or v.startswith('"'):
            v = v[1:-1]
        elif v.endswith(":"):
            v = v[:-1]
        f.setdefault(k, v)
    return f


def scenario(make_tern, fmt):
    with Peer("bylocal") as peer:
        t = make_tern(config={"log_format": fmt, "relayhost": "[127.0.0.1]:%d" % peer.port,
                              "retry_min": "60s", "retry_max": "60s"}).start()
        qid = t.send(["alice@localhost", "good@remote.test", "bad@remote.test",
                      "later@remote.test"])
        t.wait_log(r"%s: (to=<later@remote\.test>|.*\"to\":\"later@remote\.test\").*deferred"
                   % qid)
        t.wait_log(r"%s.*bad@remote\.test.*bounced|bad@remote\.test.*%s.*bounced" % (qid, qid))
        # a refused recipient (hostile bytes: tests/unit/test_log.c)
        s = socket.create_connection(("127.0.0.1", t.port), timeout=tf(10))
        f = s.makefile("rb")
        f.readline()
        for cmd in (b"HELO client.example\r\n", b"MAIL FROM:<x@example.com>\r\n",
                    b"RCPT TO:<nobody-here@localhost>\r\n", b"QUIT\r\n"):
            s.sendall(cmd)
            f.readline()
        s.close()
        t.wait_log(r"disconnect.*errors=1|\"errors\":\"1\"")
        t.stop()
        return t.run_log(), qid


def kind(f):
    """the event kinds the test compares, by their fields"""
    if f.get("event") == "accepted" and f.get("from") == "sender@example.com":
        return "accepted"
    if "to" in f and "status" in f and "event" not in f:
        return "%s %s" % (f["to"], f["status"])
    if f.get("event") == "reject":
        return "reject " + f.get("cmd", "")
    if f.get("event") in ("connect", "disconnect"):
        return f["event"]
    return None


VARYING = {"qid", "session", "ts", "pid", "port", "delay", "text", "size", "relay"}


def test_json_and_text_lines_carry_the_same_fields(make_tern):
    text_log, _ = scenario(make_tern, "text")
    json_log, qid = scenario(make_tern, "json")

    text = {}
    for line in text_log.splitlines():
        if not STAMP.match(line):
            continue
        f = parse_text(STAMP.sub("", line))
        k = kind(f)
        if k:
            text.setdefault(k, f)

    js = {}
    nlines = 0
    for line in json_log.splitlines():
        if not line.startswith("{"):
            continue  # the privileged parent's text lines, sanitizer output
        obj = json.loads(line)  # every line is valid JSON
        nlines += 1
        assert set(obj) >= {"ts", "level", "pid", "msg"}, obj
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", obj["ts"])
        # the members are the fields of its text form
        want = parse_text(obj["msg"])
        if want["level"] != "info":  # the text form's "warning: " is the level member
            want["msg"] = obj["msg"]
        got = {k: v for k, v in obj.items() if k not in ("ts", "pid", "msg")}
        want.pop("msg", None)
        assert got == want, (obj, want)
        k = kind(got)
        if k:
            js.setdefault(k, got)
    assert nlines > 10

    kinds = {"accepted", "alice@localhost sent", "good@remote.test sent",
             "bad@remote.test bounced", "later@remote.test deferred", "reject RCPT",
             "connect", "disconnect"}
    assert kinds <= set(text), sorted(text)
    assert kinds <= set(js), sorted(js)
    for k in kinds:
        a = {x: y for x, y in text[k].items() if x not in VARYING}
        b = {x: y for x, y in js[k].items() if x not in VARYING}
        assert a == b, (k, a, b)
        assert set(text[k]) == set(js[k]), k
    assert js["accepted"]["qid"] == qid
    assert js["bad@remote.test bounced"]["text"].startswith("550 5.1.1")
    assert js["later@remote.test deferred"]["text"].startswith("451 4.3.0")
    assert js["reject RCPT"]["reply"].startswith("550 5.1.1")
