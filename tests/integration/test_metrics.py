"""
test_metrics.py - GET /metrics (docs/operations.md "Metrics (Prometheus)")
scraped by a real Prometheus (Debian's prometheus package, 2.42) while the
daemon handles real mail.

What it checks:
  - /metrics answers 401 without the bearer token, 200 with it, and its
    body passes `promtool check metrics` (Prometheus's own parser and
    linter);
  - Prometheus, configured as docs/operations.md shows (credentials_file
    for the token), scrapes tern: the target is up, every family has the
    type /api/v1/metadata reports, and after mail flows (two messages to
    a Maildir, one refused recipient, one message deferred by a dead
    relayhost) the counters and gauges say exactly that;
  - cardinality stays capped: 60 recipients at 60 distinct domains waiting
    in the queue give 21 series of tern_queue_recipients (the top 20 and
    "other", summing to 60), and 150 made-up command verbs give no new
    series in tern_smtp_rejects_total.
Each test starts its own Prometheus in its tmp dir (port 0, read from its
log) and stops it by PID at the end (terminate, wait).
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tern_harness import RUN_AS, tf

TOKEN = "metrics-test-token-0123456789abcdef"
SLOW = {  # retries far away: a deferred message stays put
    "retry_min": "1h",
    "retry_max": "2h",
    "smtp_connect_timeout": "2s",
    "smtp_command_timeout": "2s",
}


def dead_port():
    """A loopback port nothing listens on (connect: refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metrics_tern(make_tern, **extra):
    cfg = dict(SLOW)
    cfg["relayhost"] = "[127.0.0.1]:%d" % dead_port()
    cfg["http_listen"] = "127.0.0.1:0"
    cfg.update(extra)
    t = make_tern(config=cfg)
    tok = t.dir / "http.token"
    tok.write_text(TOKEN + "\n")
    os.chmod(tok, 0o600)
    t.config["http_token_file"] = str(tok)
    t.write_files()
    t.start()
    m = t.wait_log(r"http listener on 127\.0\.0\.1:(\d+)")
    t.http_port = int(m.group(1))
    return t


def get(t, path, token=TOKEN):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (t.http_port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=tf(5)) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


class Prometheus:
    """A Prometheus scraping one tern every second, in dir."""

    def __init__(self, dir, target_port, token_file):
        self.dir = dir
        dir.mkdir(exist_ok=True)
        # the token file is read by Prometheus (root in CI) as it is
        (dir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: tern\n"
            "    authorization: {credentials_file: %s}\n"
            "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % (token_file, target_port))
        self.logf = open(dir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=%s" % (dir / "prometheus.yml"),
             "--storage.tsdb.path=%s" % (dir / "data"), "--web.listen-address=127.0.0.1:0"],
            cwd=str(dir), stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + tf(15)
        self.port = None
        while self.port is None:
            m = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)',
                          (dir / "prometheus.log").read_text())
            if m:
                self.port = int(m.group(1))
                break
            assert self.proc.poll() is None, (dir / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus not listening"
            time.sleep(0.05)
        # 2.42 applies its targets on a fixed 5 s tick: the first sample
        # comes 5-6 s after the start
        self.wait(lambda: self.query('up{job="tern"} == 1'), 20, "target up")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.logf.close()

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        for attempt in range(40):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    doc = json.load(r)
                break
            except urllib.error.HTTPError as e:  # 503 while the TSDB starts
                if e.code != 503 or attempt == 39:
                    raise
                time.sleep(0.25)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def value(self, expr):
        """The single value of an instant query, None when it has no result."""
        r = self.query(expr)
        assert len(r) <= 1, (expr, r)
        return float(r[0]["value"][1]) if r else None

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + tf(timeout)
        while True:
            got = cond()
            if got:
                return got
            if time.monotonic() > deadline:
                targets = self.api("targets")["activeTargets"]
                raise AssertionError("prometheus: %s not reached; targets: %s" % (what, targets))
            time.sleep(0.25)

    def wait_value(self, expr, want, timeout=15):
        """Wait until expr's value is want (the next scrapes bring it)."""
        last = []

        def ok():
            last[:] = [self.value(expr)]
            return last[0] == want
        try:
            self.wait(ok, timeout, "%s == %s" % (expr, want))
        except AssertionError as e:
            raise AssertionError("%s: last value %s (%s)" % (expr, last, e)) from None


@pytest.fixture
def prom(tmp_path):
    started = []

    def start(t):
        p = Prometheus(tmp_path / "prom", t.http_port, t.dir / "http.token")
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()


# every family docs/operations.md lists, with its type
FAMILIES = {
    "tern_smtp_connections_total": "counter",
    "tern_smtp_connections_open": "gauge",
    "tern_smtp_connections_refused_total": "counter",
    "tern_smtp_commands_total": "counter",
    "tern_smtp_replies_total": "counter",
    "tern_smtp_rejects_total": "counter",
    "tern_smtp_auth_total": "counter",
    "tern_tls_sessions_total": "counter",
    "tern_tls_handshake_failures_total": "counter",
    "tern_messages_accepted_total": "counter",
    "tern_received_bytes_total": "counter",
    "tern_deliveries_total": "counter",
    "tern_delivery_delay_seconds": "histogram",
    "tern_delivery_attempts_total": "counter",
    "tern_delivery_attempt_duration_seconds": "histogram",
    "tern_dsn_total": "counter",
    "tern_queue_messages": "gauge",
    "tern_queue_recipients": "gauge",
    "tern_queue_oldest_message_age_seconds": "gauge",
    "tern_dns_lookups_total": "counter",
    "tern_dns_lookup_duration_seconds": "histogram",
    "tern_filter_verdicts_total": "counter",
    "tern_mailauth_results_total": "counter",
    "tern_mailauth_actions_total": "counter",
    "tern_spool_free_bytes": "gauge",
    "tern_spool_free_inodes": "gauge",
    "tern_process_resident_memory_bytes": "gauge",
    "tern_process_start_time_seconds": "gauge",
    "tern_build_info": "gauge",
    "tern_event_loop_lag_seconds": "histogram",
}


def test_metrics_endpoint_token_and_format(make_tern, tmp_path):
    t = metrics_tern(make_tern)
    assert get(t, "/metrics", token=None)[0] == 401
    assert get(t, "/metrics", token="wrong")[0] == 401
    status, ctype, body = get(t, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    for name, typ in FAMILIES.items():
        assert "# TYPE %s %s\n" % (name, typ) in body, name
    (tmp_path / "scrape.txt").write_text(body)
    r = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_prometheus_sees_mail_flow(make_tern, prom):
    t = metrics_tern(make_tern)
    p = prom(t)
    # the types as Prometheus read them from the TYPE lines
    meta = p.api("metadata")
    for name, typ in FAMILIES.items():
        assert name in meta, (name, sorted(meta))
        assert meta[name][0]["type"] == typ, (name, meta[name])
    assert p.value("tern_process_resident_memory_bytes") > 1e6
    assert p.value("tern_spool_free_bytes") > 0
    assert p.value('tern_build_info') == 1

    q1 = t.send("alice@localhost", subject="one")
    q2 = t.send("bob@localhost", subject="two")
    t.wait_delivered("alice@localhost", 1)
    t.wait_delivered("bob@localhost", 1)
    with t.client() as c:  # a refused recipient: unknown user
        c.read_greeting()
        c.ehlo()
        c.expect("MAIL FROM:<sender@example.com>", r"^250 ")
        c.expect("RCPT TO:<nobody@localhost>", r"^550 5\.1\.1 ")
        c.expect("QUIT", r"^221 ")
    q3 = t.send("far@remote.test", subject="stuck")
    t.wait_log(r"%s: to=<far@remote\.test> .*status=deferred" % q3)
    sizes = [int(t.wait_log(r"%s: accepted .* size=(\d+) " % q).group(1)) for q in (q1, q2, q3)]

    p.wait_value('tern_messages_accepted_total{proto="ESMTP"}', 3)
    p.wait_value("tern_received_bytes_total", float(sum(sizes)))
    p.wait_value('tern_deliveries_total{result="sent"}', 2)
    p.wait_value('tern_deliveries_total{result="deferred"}', 1)
    p.wait_value('tern_delivery_attempts_total{transport="local",result="sent"}', 2)
    p.wait_value('tern_delivery_attempts_total{transport="relay",result="deferred"}', 1)
    p.wait_value('tern_delivery_delay_seconds_count{result="sent"}', 2)
    p.wait_value('tern_delivery_attempt_duration_seconds_count{transport="local"}', 2)
    p.wait_value('tern_smtp_rejects_total{cmd="RCPT",code="550",status="5.1.1"}', 1)
    p.wait_value('tern_smtp_commands_total{verb="RCPT"}', 4)
    p.wait_value('tern_smtp_commands_total{verb="DATA"}', 3)
    p.wait_value('tern_smtp_connections_total{mode="smtp"}', 4)
    p.wait_value("tern_smtp_connections_open", 0)
    p.wait_value('tern_queue_messages{state="deferred"}', 1)
    p.wait_value('tern_queue_messages{state="active"}', 0)
    p.wait_value('tern_queue_recipients{domain="remote.test"}', 1)
    assert p.value("tern_queue_oldest_message_age_seconds") >= 0
    # no 2xx reply was counted as an error, every refusal as one
    assert p.value('tern_smtp_replies_total{class="5xx"}') == 1
    assert p.value('tern_smtp_replies_total{class="2xx"}') > 10
    assert p.value("tern_event_loop_lag_seconds_count") >= 1
    # rate() works on them as a dashboard would use it: a series appears
    # with its first event, so it is the next message that rate() sees
    t.send("carol@localhost", subject="four")
    p.wait_value('tern_messages_accepted_total{proto="ESMTP"}', 4)
    p.wait(lambda: p.value('sum(rate(tern_messages_accepted_total[1m]))'), 10, "rate > 0")


def test_label_cardinality_capped(make_tern, prom):
    t = metrics_tern(make_tern, max_errors="1000")
    p = prom(t)
    rcpts = ["u@d%02d.test" % i for i in range(60)]
    qid = t.send(rcpts, subject="many domains")
    for r in rcpts[:1] + rcpts[-1:]:
        t.wait_log(r"%s: to=<%s> .*status=deferred" % (qid, re.escape(r)))
    with t.client() as c:  # 150 verbs nobody knows
        c.read_greeting()
        c.ehlo()
        for i in range(150):
            c.send(b"XVERB%d\r\n" % i)
        for i in range(150):
            c.reply()
        c.expect("QUIT", r"^221 ")
    p.wait_value("count(tern_queue_recipients)", 21)
    p.wait_value("sum(tern_queue_recipients)", 60)
    p.wait_value('tern_queue_recipients{domain="other"}', 40)
    p.wait_value('tern_smtp_commands_total{verb="unknown"}', 150, timeout=20)
    assert p.value('count(tern_smtp_rejects_total{cmd="unknown"})') == 1
    assert p.value("count(tern_smtp_rejects_total)") <= 3
    assert p.value("count(tern_smtp_commands_total)") <= 6
