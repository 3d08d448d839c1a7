"""
test_http_api.py - the HTTP listener (http_listen, http_token_file) and the
JSON API under /api/v1/ against the real daemon: the bearer token (none,
wrong, right; a new one after a reload), malformed and oversized requests,
a slow client cut by http_timeout while others are served, every queue
operation on real queued mail (kept deferred by a scripted relay host, as
in test_queue_tools.py) with its effect seen through the CLI as well,
reload through the API, and check-config's errors for the new keys.
"""

import http.client
import json
import re
import socket
import time

from tern_harness import RUN_AS, Peer, open_for, run_tool, tf

TOKEN = "0123456789abcdef0123456789abcdef"
SENDER = "alice@localhost"
SLOW = {  # retries far away: a deferred message stays put
    "retry_min": "1h",
    "retry_max": "2h",
    "smtp_connect_timeout": "2s",
    "smtp_command_timeout": "2s",
    "smtp_data_timeout": "2s",
    "smtp_data_done_timeout": "2s",
}


def api_tern(make_tern, peer=None, token=TOKEN, **extra):
    t = make_tern(config={})
    tok = t.dir / "http-token"
    tok.write_text(token + "\n")
    tok.chmod(0o600)
    cfg = dict(SLOW)
    cfg.update({"http_listen": "127.0.0.1:0", "http_token_file": str(tok)})
    if peer:
        cfg["relayhost"] = "[127.0.0.1]:%d" % peer.port
    cfg.update(extra)
    t.config.update(cfg)
    t.write_files()
    t.start()
    t.http_port = int(t.wait_log(r"http listener on 127\.0\.0\.1:(\d+) ").group(1))
    t.token_path = tok
    return t


def call(t, method, path, token=TOKEN, body=None, headers=None):
    """(status, headers, parsed JSON or None)"""
    c = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=tf(10))
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw
    return r.status, r.headers, data


def raw(t, data, timeout=10):
    """Send raw bytes, read until the server closes; the reply."""
    s = socket.create_connection(("127.0.0.1", t.http_port), timeout=tf(timeout))
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except ConnectionResetError:
        pass
    s.close()
    return out


def status_of(reply):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    return int(m.group(1)) if m else None


def tool(t, *args, ok=True):
    r = run_tool(t, *args)
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def deferred(t, to="far@remote.test", subject="stuck"):
    qid = t.send(to, sender=SENDER, subject=subject)
    t.wait_log(r"%s: to=<%s> .*status=deferred" % (qid, re.escape(to)))
    return qid


def wait_count(t, regex, n, timeout=10):
    deadline = time.monotonic() + tf(timeout)
    while len(re.findall(regex, t.run_log())) < n:
        assert time.monotonic() < deadline, "fewer than %d of %r:\n%s" % (n, regex, t.tail())
        time.sleep(0.05)


def test_token_and_bad_requests(make_tern):
    t = api_tern(make_tern)
    st, h, body = call(t, "GET", "/api/v1/queue", token=None)
    assert st == 401 and h["WWW-Authenticate"] == 'Bearer realm="tern"', (st, dict(h))
    assert body == {"error": "a bearer token is needed"}
    st, h, _ = call(t, "GET", "/api/v1/queue", token=TOKEN[:-1] + "0")
    assert st == 401 and "invalid_token" in h["WWW-Authenticate"]
    st, _, _ = call(t, "GET", "/api/v1/queue", token=TOKEN + "x")
    assert st == 401
    st, _, _ = call(t, "GET", "/nothing/here", token=None)
    assert st == 401  # nothing is told without the token, not even what exists
    st, h, body = call(t, "GET", "/api/v1/queue")
    assert st == 200 and h["Content-Type"] == "application/json"
    assert body == {"messages": [], "count": 0, "bytes": 0}
    st, _, _ = call(t, "GET", "/nothing/here")
    assert st == 404
    st, h, _ = call(t, "PUT", "/api/v1/queue")
    assert st == 405 and "GET" in h["Allow"] and "DELETE" in h["Allow"]
    # malformed
    assert status_of(raw(t, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    assert status_of(raw(t, b"GET /api/v1/queue HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
                            b"Connection: close\r\n\r\n" % TOKEN.encode())) == 400  # no Host
    # oversized: a body over the limit (refused before it is read), headers over the
    # connection's memory
    assert status_of(raw(t, b"POST /api/v1/queue/flush HTTP/1.1\r\nHost: x\r\nAuthorization: "
                            b"Bearer %s\r\nContent-Length: 10000000\r\n\r\n" % TOKEN.encode())) == 413
    big = b"GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 40000 + b"\r\n\r\n"
    assert status_of(raw(t, big)) == 431
    # still serving
    assert call(t, "GET", "/api/v1/queue")[0] == 200
    t.stop()
    assert "http listener" in t.log


def test_slow_client_cut(make_tern):
    t = api_tern(make_tern, http_timeout="2s")
    slow = socket.create_connection(("127.0.0.1", t.http_port), timeout=tf(15))
    slow.sendall(b"GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    t0 = time.monotonic()
    # the others are served meanwhile
    for _ in range(5):
        assert call(t, "GET", "/api/v1/queue")[0] == 200
        time.sleep(0.1)
    assert slow.recv(4096) == b""  # closed by the server, no answer
    took = time.monotonic() - t0
    assert took < tf(6), took
    slow.close()
    assert call(t, "GET", "/api/v1/queue")[0] == 200


def test_operations(make_tern):
    with Peer("rcpt451") as peer:
        t = api_tern(make_tern, peer)
        qa = deferred(t, to="a@one.test", subject="first")
        qb = deferred(t, to="b@two.test", subject="second")
        # list: the same JSON as the CLI's (one implementation)
        st, _, body = call(t, "GET", "/api/v1/queue")
        assert st == 200 and body["count"] == 2
        assert [m["queue_id"] for m in body["messages"]] == sorted([qa, qb])
        cli = json.loads(tool(t, "queue", "list", "--json").stdout)
        assert cli == body
        st, _, body = call(t, "GET", "/api/v1/queue?domain=TWO.test")
        assert [m["queue_id"] for m in body["messages"]] == [qb]
        assert json.loads(tool(t, "queue", "list", "two.test", "--json").stdout) == body
        # show
        st, _, body = call(t, "GET", "/api/v1/queue/" + qa.lower())
        assert st == 200 and body["message"]["queue_id"] == qa
        assert "Subject: first\r\n" in body["headers"]
        assert json.loads(tool(t, "queue", "show", qa, "--json").stdout) == body
        st, _, body = call(t, "GET", "/api/v1/queue/0000000000000000")
        assert st == 404 and body["ok"] is False and "no such message" in body["result"]
        st, _, body = call(t, "GET", "/api/v1/queue/not-a-queue-id")
        assert st == 400 and body["ok"] is False
        # hold, seen by the CLI
        st, _, body = call(t, "POST", "/api/v1/queue/%s/hold" % qa)
        assert st == 200 and body["ok"] is True and body["queue_id"] == qa
        assert body["result"].startswith("%s: held" % qa), body  # (deliveries in progress...)
        t.wait_log(r"%s: held by the administrator" % qa)
        assert "HELD (held by the administrator)" in tool(t, "queue", "list").stdout
        # flush one held message: it stays held
        st, _, body = call(t, "POST", "/api/v1/queue/%s/flush" % qa)
        assert st == 200 and "held" in body["result"]
        # release
        st, _, body = call(t, "POST", "/api/v1/queue/%s/release" % qa)
        assert st == 200 and body["result"].startswith("%s: released" % qa), body
        assert "HELD" not in tool(t, "queue", "list").stdout
        # flush one message: tried again at once
        st, _, body = call(t, "POST", "/api/v1/queue/%s/flush" % qa)
        assert st == 200 and body["result"] == "%s: 1 recipient due now" % qa
        wait_count(t, r"%s: to=<a@one\.test> .*status=deferred" % qa, 2)
        # bounce now: a DSN to the sender, the message gone
        st, _, body = call(t, "POST", "/api/v1/queue/%s/bounce" % qb)
        assert st == 200 and body["ok"] is True, body
        assert body["result"] == "%s: bounced (1 recipient; a DSN goes to the sender)" % qb, body
        t.wait_log(r"%s: sender non-delivery notification: [0-9A-Z]{16}" % qb)
        t.wait_delivered(SENDER, 1)
        dsn = t.messages(SENDER)[0].read_text(errors="replace")
        assert "Action: failed" in dsn and "returned to the sender by the administrator" in dsn
        t.wait_log(r"%s: removed" % qb)
        assert qb not in tool(t, "queue", "list").stdout
        # flush all, then one domain
        st, _, body = call(t, "POST", "/api/v1/queue/flush")
        assert st == 200 and body == {"ok": True, "queue_id": None,
                                      "result": "flush: 1 recipient due now"}, body
        wait_count(t, r"%s: to=<a@one\.test> .*status=deferred" % qa, 3)
        st, _, body = call(t, "POST", "/api/v1/queue/flush?domain=one.test")
        assert st == 200 and body["result"] == "flush one.test: 1 recipient due now", body
        wait_count(t, r"%s: to=<a@one\.test> .*status=deferred" % qa, 4)
        # delete: gone, no DSN
        st, _, body = call(t, "DELETE", "/api/v1/queue/" + qa)
        assert st == 200 and body["result"].startswith("%s: deleted" % qa), body
        t.wait_log(r"%s: deleted by the administrator" % qa)
        assert json.loads(tool(t, "queue", "list", "--json").stdout)["count"] == 0
        st, _, body = call(t, "DELETE", "/api/v1/queue/" + qa)
        assert st == 404
        time.sleep(0.5)
        assert len(t.messages(SENDER)) == 1  # the bounce's DSN only
        # unknown actions
        assert call(t, "POST", "/api/v1/queue/%s/explode" % qa)[0] == 404
        assert call(t, "DELETE", "/api/v1/queue")[0] == 404
        assert call(t, "POST", "/api/v1/queue/%s/hold" % "0000000000000000")[0] == 404


def test_cli_bounce_and_flush_one(make_tern):
    """The same operations from the CLI (control socket): bounce, flush QID."""
    with Peer("rcpt451") as peer:
        t = api_tern(make_tern, peer)
        qid = deferred(t)
        out = tool(t, "queue", "flush", qid.lower()).stdout
        assert out == "%s: 1 recipient due now\n" % qid, out
        out = json.loads(tool(t, "queue", "bounce", qid, "--json").stdout)
        assert out["ok"] is True and out["queue_id"] == qid and "bounced" in out["result"]
        t.wait_delivered(SENDER, 1)
        t.wait_queue_empty()
        # the API sees what the CLI did; the scheduler drops a message from
        # its index after the file is gone (the removal is a thread-pool job
        # whose completion runs on the loop), so wait for it a moment
        deadline = time.monotonic() + tf(10)
        while (n := call(t, "GET", "/api/v1/queue")[2]["count"]) != 0:
            assert time.monotonic() < deadline, n
            time.sleep(0.05)


def test_reload(make_tern):
    t = api_tern(make_tern)
    new = "fedcba9876543210fedcba9876543210"
    t.token_path.write_text(new + "\n")
    st, _, body = call(t, "POST", "/api/v1/reload")
    assert st == 200 and body["ok"] is True and "reloaded" in body["result"], body
    t.wait_log(r"reload requested \(administrator request\)")
    assert call(t, "GET", "/api/v1/queue")[0] == 401  # the old token
    assert call(t, "GET", "/api/v1/queue", token=new)[0] == 200
    # SIGHUP reads it again too
    t.token_path.write_text(TOKEN + "\n")
    import signal
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload requested \(SIGHUP\)")
    t.wait_log(r"reload: outbound settings applied")
    deadline = time.monotonic() + tf(5)
    while call(t, "GET", "/api/v1/queue")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # a token too short at a reload: the old one stays, the reload itself applies
    t.token_path.write_text("short\n")
    st, _, body = call(t, "POST", "/api/v1/reload")
    assert st == 200 and "keeps its token" in body["result"], body
    t.wait_log(r"reload: http_token_file .* shorter than 16 characters.*; the HTTP listener "
               r"keeps the token it had")
    assert call(t, "GET", "/api/v1/queue")[0] == 200
    # a configuration with errors: 500, the running one stays
    t.token_path.write_text(TOKEN + "\n")
    t.conf_path.write_text(t.conf_path.read_text() + "no_such_key = 1\n")
    st, _, body = call(t, "POST", "/api/v1/reload")
    assert st == 500 and body["ok"] is False and "has errors" in body["result"], body
    assert call(t, "GET", "/api/v1/queue")[0] == 200


def test_check_config(make_tern):
    t = make_tern(config={"http_listen": "localhost:8025"})
    r = tool(t, "check-config", ok=False)
    assert r.returncode != 0
    assert re.search(r"tern\.conf:\d+: http_listen: .*not a numeric IP address", r.stderr), r.stderr
    tok = t.dir / "tok"
    tok.write_text("short\n")
    tok.chmod(0o600)
    t.config.update({"http_listen": "8025", "http_token_file": str(tok)})
    t.write_files()
    r = tool(t, "check-config", ok=False)
    assert r.returncode != 0 and "shorter than 16 characters" in r.stderr, r.stderr
    tok.write_text(TOKEN + "\n")
    tok.chmod(0o644)
    r = tool(t, "check-config", ok=False)
    assert r.returncode != 0 and "readable by group or others" in r.stderr, r.stderr
    tok.chmod(0o600)
    if RUN_AS:  # what "run" does too: the files are the user's (as installed)
        open_for(RUN_AS, t.dir)
    r = tool(t, "check-config")
    assert "config ok" in r.stdout
    del t.config["http_token_file"]
    t.write_files()
    r = tool(t, "check-config")
    assert re.search(r"http_listen is set but http_token_file is not", r.stderr), r.stderr
