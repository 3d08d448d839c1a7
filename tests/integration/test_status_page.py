"""
test_status_page.py - the status page (GET /status, control/status.c and
src/control/status/page.html) and its data (GET /api/v1/status) on the real
daemon, with the HTTP listener on 127.0.0.1:0, drawn by Debian's headless
Chromium driven over the DevTools protocol (python3-websocket; the recipe
in /work/shared/recipes-ops.md section 2).

Real mail flows first: a message delivered to a Maildir, a recipient
refused (550 5.1.1), and a message deferred by a dead relay host (nothing
listens on its port), so the queue holds one destination with an error.
Then Chromium opens /status#token=TOKEN at 800x600 and the test checks: no
console error of any kind (exceptions, console.error, Log entries such as
a failed request), the token left the address bar and never reached the
daemon's log, the chart has bars (SVG rects) for the sent and deferred
minutes, the destination table shows the dead relay's domain with its
error as the log wrote it, the rejection list shows the refusal's reason,
and a screenshot saved in the test's tmp dir is an 800x600 PNG. The page
is public but the data needs the token (401 without it).
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import urllib.request

import pytest

from tern_harness import Client, free_port, make_cert, tf, tls_client_context

websocket = pytest.importorskip("websocket")  # python3-websocket (scripts/deps.sh)

TOKEN = "status-page-token-4f1c9a0b7e2d"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--window-size=800,600"]


def status_tern(make_tern, **extra):
    t = make_tern(config={})
    cert, key = make_cert(t.dir)
    tok = t.dir / "http-token"
    tok.write_text(TOKEN + "\n")
    tok.chmod(0o600)
    cfg = {
        "http_listen": "127.0.0.1:0",
        "http_token_file": str(tok),
        # the dead relay's deferral stays in the queue for the whole test
        "retry_min": "1h",
        "retry_max": "2h",
        "smtp_connect_timeout": "2s",
        "tls_cert": str(cert),
        "tls_key": str(key),
    }
    cfg.update(extra)
    t.config.update(cfg)
    t.write_files()
    t.start()
    t.http_port = int(t.wait_log(r"http listener on 127\.0\.0\.1:(\d+)").group(1))
    return t


def get(t, path, token=None):
    c = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=tf(10))
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.headers, body


class Chromium:
    """A headless Chromium of this test (its own profile and HOME in tmp), one page
    driven over DevTools; every event is kept for the console checks."""

    def __init__(self, tmp):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = open(tmp / "chromium.log", "w")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--user-data-dir=%s" % (tmp / "profile"),
             "--remote-debugging-port=0", "about:blank"],
            env={**os.environ, "HOME": str(tmp)}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        self.events = []
        self.n = 0
        self.ws = None
        pf = tmp / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + tf(30)
        while not (pf.exists() and pf.read_text().strip()):
            assert self.proc.poll() is None, "chromium exited: %s" % (tmp / "chromium.log").read_text()
            assert time.monotonic() < deadline, "chromium: no DevTools port"
            time.sleep(0.05)
        port = pf.read_text().split()[0]
        while True:
            try:
                targets = json.load(urllib.request.urlopen(
                    "http://127.0.0.1:%s/json/list" % port, timeout=tf(10)))
                url = next(x["webSocketDebuggerUrl"] for x in targets if x["type"] == "page")
                break
            except (OSError, StopIteration):
                assert time.monotonic() < deadline, "chromium: no page target"
                time.sleep(0.1)
        self.ws = websocket.create_connection(url, timeout=tf(20), suppress_origin=True)

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                assert "error" not in m, m
                return m["result"]
            self.events.append(m)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait_js(self, expr, timeout):
        deadline = time.monotonic() + tf(timeout)
        while True:
            v = self.js(expr)
            if v:
                return v
            assert time.monotonic() < deadline, "page never got %s" % expr
            time.sleep(0.1)

    def errors(self):
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown" or \
               m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert") or \
               m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(e)
        return out

    def close(self):
        if self.ws:
            try:
                self.ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=tf(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # its helpers (renderer, GPU, zygote), in the group it leads
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


@pytest.fixture
def chromium(tmp_path):
    if not CHROMIUM:
        pytest.skip("no chromium (scripts/deps.sh installs it)")
    c = Chromium(tmp_path / "chromium")
    yield c
    c.close()


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_status_page(make_tern, chromium, tmp_path):
    dead = free_port()  # nothing listens there: the relay is dead
    t = status_tern(make_tern, relayhost="[127.0.0.1]:%d" % dead)

    # the page is public, the data is not
    st, hdr, body = get(t, "/status")
    assert st == 200 and hdr["Content-Type"].startswith("text/html"), (st, hdr)
    assert b"<title>tern status</title>" in body and b'rel="icon" href="data:,"' in body
    assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # nothing fetched from elsewhere
    assert get(t, "/api/v1/status")[0] == 401
    assert get(t, "/api/v1/status", token="wrong")[0] == 401
    assert get(t, "/status/other")[0] == 404

    # mail: one delivered, one refused recipient, one deferred by the dead relay
    t.send("alice@localhost", subject="delivered")
    t.wait_delivered("alice@localhost", 1)
    with t.client() as c:
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<sender@example.com>", r"^250 ")
        c.expect("RCPT TO:<nosuchuser@localhost>", r"^550 5\.1\.1 ")
        c.expect("QUIT", r"^221 ")
    c = Client(t.port)  # a session under TLS (STARTTLS), for the TLS share
    c.read_greeting()
    c.ehlo()
    assert c.cmd("STARTTLS").code == 220
    c.sock = tls_client_context().wrap_socket(c.sock)
    c.ehlo()
    c.expect("QUIT", r"^221 ")
    c.close()
    tls_sid = t.wait_log(r"tls session=(S\d+) ").group(1)
    refused = t.wait_log(r"reject cmd=RCPT reply=\"550 5\.1\.1 ([^\"]*)\"").group(1)
    qid = t.send("user@dead.test", subject="to a dead relay")
    deferred = t.wait_log(r"%s: to=<user@dead\.test> .*status=deferred \(([^\n]*)\)\n" % qid,
                          timeout=20).group(1)

    # the outcome is logged before its status record is written; until
    # then the recipient is "active" and its error not shown yet
    deadline = time.monotonic() + tf(10)
    while True:
        st, _, body = get(t, "/api/v1/status", token=TOKEN)
        assert st == 200
        data = json.loads(body)
        dests = {d["domain"]: d for d in data["queue"]["destinations"]}
        if dests.get("dead.test", {}).get("last_error") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert dests["dead.test"]["recipients"] == 1 and dests["dead.test"]["last_error"] == deferred
    assert data["deliveries"]["sent"] >= 1 and data["deliveries"]["deferred"] >= 1
    assert any(r["status"] == "5.1.1" and r["reason"] == refused for r in data["rejections"]["recent"])
    t.wait_log(r"disconnect session=%s " % tls_sid)  # counted when it ends
    st, _, body = get(t, "/api/v1/status", token=TOKEN)
    data = json.loads(body)
    assert data["tls"]["inbound"]["tls"] == 1 and data["tls"]["inbound"]["plain"] >= 3, data["tls"]
    assert len(data["deliveries"]["minutes"]) == 60

    # the page in Chromium, the token in the fragment
    c = chromium
    c.call("Emulation.setDeviceMetricsOverride", width=800, height=600, deviceScaleFactor=1,
           mobile=False)
    c.call("Runtime.enable")
    c.call("Log.enable")
    c.call("Page.enable")
    c.call("Page.navigate", url="http://127.0.0.1:%d/status#token=%s" % (t.http_port, TOKEN))
    c.wait_js("window.statusDrawn >= 1", 30)

    assert c.js("location.hash") == "", "the token stays in the address bar"
    bars = c.js("document.querySelectorAll('#chart rect.bar').length")
    assert bars >= 2, bars
    assert c.js("document.querySelectorAll('#chart rect.bar.sent').length") >= 1
    assert c.js("document.querySelectorAll('#chart rect.bar.deferred').length") >= 1
    rows = c.js("Array.from(document.querySelectorAll('#dests tbody tr'))"
                ".map(function (r) { return Array.from(r.cells).map(function (x) {"
                " return x.textContent; }); })")
    row = next((r for r in rows if r[0] == "dead.test"), None)
    assert row, rows
    assert row[1].startswith("1") and deferred in row[4], row
    rej = c.js("document.getElementById('rejects').tBodies[0].textContent")
    assert refused in rej and "5.1.1" in rej and "RCPT" in rej, rej
    tls = c.js("document.getElementById('tls').textContent")
    assert "inbound: " in tls and "with TLS (1 of " in tls and "outbound: " in tls, tls

    png = base64.b64decode(c.call("Page.captureScreenshot", format="png")["data"])
    shot = tmp_path / "status.png"
    shot.write_bytes(png)
    assert shot.stat().st_size > 5000
    assert png_size(shot.read_bytes()) == (800, 600)

    time.sleep(0.3)  # late console messages, if any, arrive before the check
    c.js("1")
    assert c.errors() == [], c.errors()
    # the fragment is never sent: the daemon never saw the token in a URL
    assert TOKEN not in t.log
