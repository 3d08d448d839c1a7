"""
test_ratelimit.py - issue 12's rate limits (src/filter/ratelimit.c,
docs/filtering.md "Rate limits"): per client IP connections (421 4.7.0 and
close), messages and recipients (451 4.7.1), each reply naming its limit;
mynetworks exempt by default (client_limit_exceptions) and limited with
client_limit_exceptions empty; per authenticated user (AUTH on submission); per sender domain; a
refused event charges nothing; check-config refuses a bad rate. The shared
store: a real redis-server and two tern nodes enforcing one limit together;
Redis hung (SIGSTOP: the timeout) and killed (fail open, one log line) and
fail closed (451). Greylisting (src/filter/greylist.c): 451 at the first
try and before the delay, accepted after it, remembered across a restart,
mynetworks exempt.
"""

import base64
import re
import signal
import socket
import subprocess
import time

import pytest

from tern_harness import Client, Tern, free_port, make_cert, tf, tls_client_context

# 127.0.0.1 is the test client: outside mynetworks unless a test says otherwise
NOT_MYNET = {"mynetworks": "10.99.0.0/16"}


def session(t, port=None):
    return Client(port or t.port)


def helo(t):
    c = session(t)
    c.read_greeting()
    c.expect("EHLO client.test", r"^250")
    return c


def test_client_connections_421(make_tern):
    t = make_tern(config={**NOT_MYNET, "ratelimit_client_connections": "3/1h"}).start()
    for _ in range(3):
        c = session(t)
        c.read_greeting()
        assert c.greeting.code == 220
        c.expect("QUIT", r"^221")
        c.close()
    c = session(t)
    r = c.reply()
    assert r.code == 421 and r.text.startswith("421 4.7.0"), r.text
    assert "ratelimit_client_connections = 3/1h" in r.text and "127.0.0.1" in r.text
    try:
        more = c.sock.recv(100)
    except OSError:
        more = b""
    assert more == b""  # closed after the 421
    c.close()
    t.wait_log(r"ratelimit limit=ratelimit_client_connections key=127\.0\.0\.1 rate=3/1h client=127\.0\.0\.1")


def test_client_messages_and_recipients_451(make_tern):
    t = make_tern(config={**NOT_MYNET, "ratelimit_client_messages": "2/1h",
                          "ratelimit_client_recipients": "3/1h"}).start()
    c = session(t)
    c.read_greeting()
    c.expect("EHLO client.test", r"^250")
    c.expect("MAIL FROM:<a@example.net>", r"^250 2\.1\.0")
    c.expect("RCPT TO:<alice@localhost>", r"^250")
    c.expect("RCPT TO:<bob@localhost>", r"^250")
    c.expect("RCPT TO:<carol@localhost>", r"^250")
    r = c.expect("RCPT TO:<alice@example.com>", r"^451 4\.7\.1 ")
    assert "ratelimit_client_recipients = 3/1h" in r.text
    c.expect("RSET", r"^250")
    # the refused RCPT charged nothing, but the limit stays spent
    c.expect("MAIL FROM:<a@example.net>", r"^250")
    c.expect("RCPT TO:<alice@localhost>", r"^451 4\.7\.1 .*ratelimit_client_recipients")
    c.expect("RSET", r"^250")
    r = c.expect("MAIL FROM:<a@example.net>", r"^451 4\.7\.1 ")
    assert "ratelimit_client_messages = 2/1h" in r.text and "127.0.0.1" in r.text
    c.expect("QUIT", r"^221")
    c.close()
    t.wait_log(r"reject cmd=MAIL reply=\"451 4\.7\.1 .*ratelimit_client_messages")


def test_mynetworks_exempt_unless_told(make_tern):
    t = make_tern(config={"ratelimit_client_connections": "1/1h",
                          "ratelimit_client_messages": "1/1h"}).start()
    for _ in range(3):  # 127.0.0.1 is in mynetworks (the harness default)
        c = helo(t)
        c.expect("MAIL FROM:<a@example.net>", r"^250")
        c.close()
    t.stop()
    t2 = make_tern(config={"ratelimit_client_connections": "1/1h",
                           "client_limit_exceptions": ""}).start()
    c = session(t2)
    assert c.read_greeting().code == 220
    c.close()
    c = session(t2)
    assert c.reply().code == 421
    c.close()
    t2.stop()
    # client_limit_exceptions exempts a client outside mynetworks
    t3 = make_tern(config={**NOT_MYNET, "ratelimit_client_connections": "1/1h",
                           "client_limit_exceptions": "127.0.0.0/8"}).start()
    for _ in range(3):
        c = session(t3)
        assert c.read_greeting().code == 220
        c.close()
    t3.stop()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_user_messages_with_auth(make_tern, tmp_path):
    cert, key = make_cert(tmp_path)
    t = make_tern(config={**NOT_MYNET, "tls_cert": str(cert), "tls_key": str(key),
                          "auth_users": str(tmp_path / "users"), "auth_failure_delay": "0",
                          "listen": "127.0.0.1:0 submission",
                          "ratelimit_user_messages": "2/1d"})
    for u, p in (("alice@localhost", "alice-secret-1"), ("bob@localhost", "bob-secret-22")):
        r = subprocess.run(t.command("passwd", "add", u), input=(p + "\n").encode(), capture_output=True,
                           env=Tern.env(), timeout=tf(30))
        assert r.returncode == 0, r.stderr
    t.start()

    def login(user, pw):
        c = Client(t.port)
        c.read_greeting()
        c.expect("EHLO client.test", r"^250")
        c.expect("STARTTLS", r"^220")
        c.sock = tls_client_context().wrap_socket(c.sock)
        c.expect("EHLO client.test", r"^250")
        c.expect("AUTH PLAIN " + b64("\0%s\0%s" % (user, pw)), r"^235")
        return c

    c = login("alice@localhost", "alice-secret-1")
    c.expect("MAIL FROM:<alice@localhost>", r"^250")
    c.expect("RSET", r"^250")
    c.expect("MAIL FROM:<alice@localhost>", r"^250")
    c.expect("RSET", r"^250")
    r = c.expect("MAIL FROM:<alice@localhost>", r"^451 4\.7\.1 ")
    assert "ratelimit_user_messages = 2/1d" in r.text and "user alice@localhost" in r.text
    c.close()
    c = login("alice@localhost", "alice-secret-1")  # counted per user, not per connection
    c.expect("MAIL FROM:<alice@localhost>", r"^451 4\.7\.1 .*ratelimit_user_messages")
    c.close()
    c = login("bob@localhost", "bob-secret-22")  # another user has his own
    c.expect("MAIL FROM:<bob@localhost>", r"^250")
    c.close()


def test_sender_domain(make_tern):
    t = make_tern(config={**NOT_MYNET, "ratelimit_sender_domain_messages": "1/1h"}).start()
    c = helo(t)
    c.expect("MAIL FROM:<a@Example.NET>", r"^250")
    c.expect("RSET", r"^250")
    c.expect("MAIL FROM:<b@example.net>", r"^451 4\.7\.1 .*sender domain example\.net "
             r"\(ratelimit_sender_domain_messages = 1/1h\)")
    c.expect("MAIL FROM:<b@example.org>", r"^250")
    c.expect("RSET", r"^250")
    c.expect("MAIL FROM:<>", r"^250")  # the null sender has no domain
    c.close()


def test_check_config_refuses_bad_rate(make_tern):
    t = make_tern(config={"ratelimit_client_messages": "100/1x", "ratelimit_max_keys": "5"})
    r = subprocess.run(t.command("check-config"), capture_output=True, text=True, env=Tern.env(),
                       timeout=tf(30))
    assert r.returncode != 0
    assert "ratelimit_client_messages" in r.stderr + r.stdout
    assert "ratelimit_max_keys" in r.stderr + r.stdout


# ---- the shared store: a real redis-server, two tern nodes ----

@pytest.fixture
def redis(tmp_path):
    """start() -> (Popen, port): a private redis-server on 127.0.0.1 (no
    persistence); Redis cannot take port 0, so a free port is picked and the
    start retried if another process took it meanwhile. Stopped at teardown."""
    procs = []

    def start():
        for _ in range(5):
            port = free_port()
            log = open(tmp_path / "redis.log", "ab")
            p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(tmp_path)],
                                 stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.append(p)
            deadline = time.monotonic() + tf(5)
            while time.monotonic() < deadline and p.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(64).startswith(b"+PONG"):
                            return p, port
                except OSError:
                    time.sleep(0.05)
            if p.poll() is None:
                p.kill()
            p.wait()
        raise RuntimeError("redis-server did not start: " + (tmp_path / "redis.log").read_text())

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.terminate()
            p.wait(tf(10))


def mail_code(t, sender="x@example.net"):
    c = helo(t)
    r = c.cmd("MAIL FROM:<%s>" % sender)
    c.close()
    return r


def test_redis_two_nodes_share_one_limit(make_tern, redis):
    _, port = redis()
    cfg = {**NOT_MYNET, "ratelimit_client_messages": "4/1h", "ratelimit_redis": "127.0.0.1:%d" % port}
    a = make_tern(config=cfg).start()
    b = make_tern(config=cfg).start()
    codes = [mail_code(t).code for t in (a, b, a, b, a, b)]
    assert codes == [250, 250, 250, 250, 451, 451], codes  # the sum across both nodes
    r = mail_code(b)
    assert "ratelimit_client_messages = 4/1h" in r.text and r.text.startswith("451 4.7.1")
    a.wait_log(r"ratelimit: redis 127\.0\.0\.1:%d connected" % port)


def test_redis_down_fails_open_or_closed(make_tern, redis):
    p, port = redis()
    addr = "127.0.0.1:%d" % port
    t = make_tern(config={**NOT_MYNET, "ratelimit_client_messages": "1/1h", "ratelimit_redis": addr}).start()
    assert mail_code(t).code == 250
    assert mail_code(t).code == 451
    # a hung Redis: each check waits at most ratelimit_redis_timeout (1s), then fails open
    p.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    assert mail_code(t).code == 250
    assert time.monotonic() - t0 < tf(3)
    p.send_signal(signal.SIGCONT)
    t.wait_log(r"ratelimit: redis %s is back" % re.escape(addr))  # reconnected with backoff
    # killed: mail flows, one log line for the whole outage
    before = len(t.run_log())
    p.terminate()
    p.wait(tf(10))
    for _ in range(4):
        assert mail_code(t).code == 250
    time.sleep(0.5)  # reconnection attempts meanwhile log nothing more
    assert mail_code(t).code == 250
    assert len(re.findall(r"ratelimit: redis \S+ unavailable", t.run_log()[before:])) == 1, t.run_log()
    # the same outage with ratelimit_redis_failure = closed: 451
    t2 = make_tern(config={**NOT_MYNET, "ratelimit_client_messages": "1/1h", "ratelimit_redis": addr,
                           "ratelimit_redis_failure": "closed"}).start()
    r = mail_code(t2)
    assert r.text.startswith("451 4.7.1") and "cannot be checked now" in r.text, r.text
    assert mail_code(t2).code == 451


# ---- greylisting ----

def test_greylisting(make_tern):
    t = make_tern(config={**NOT_MYNET, "greylist": "yes", "greylist_delay": "2s"}).start()

    def rcpt(to="alice@localhost", sender="s@example.net"):
        c = helo(t)
        c.expect("MAIL FROM:<%s>" % sender, r"^250")
        r = c.cmd("RCPT TO:<%s>" % to)
        c.close()
        return r

    r = rcpt()
    assert r.text == "451 4.7.1 greylisted, try again in 2 seconds", r.text
    assert rcpt().code == 451  # before the delay
    assert rcpt(to="bob@localhost").code == 451  # another triplet, first seen
    time.sleep(2.2)
    assert rcpt().code == 250  # after the delay: passes, remembered
    t.wait_log(r"greylist passed client=127\.0\.0\.1 from=<s@example\.net> to=<alice@localhost>")
    grey = t.spool / "greylist"
    deadline = time.monotonic() + tf(5)
    while not (grey.exists() and " 1 127.0.0.0/24 <s@example.net> <alice@localhost>" in grey.read_text()):
        assert time.monotonic() < deadline, "the greylist file was not written"
        time.sleep(0.1)
    t.restart()
    assert rcpt().code == 250  # survived the restart
    assert rcpt(to="bob@localhost").code == 250  # first seen before it, retried after the delay
    t.wait_log(r"greylist: loaded 2 triplets")
    assert rcpt(to="carol@localhost").code == 451
    # mynetworks are exempt
    t2 = make_tern(config={"greylist": "yes", "greylist_delay": "1h"}).start()
    c = helo(t2)
    c.expect("MAIL FROM:<s@example.net>", r"^250")
    c.expect("RCPT TO:<alice@localhost>", r"^250")
    c.close()


def test_greylist_saved_at_shutdown(make_tern):
    """The table is saved at most once a second while running; a stop in
    between saves what changed since (src/filter/greylist.c grey_shutdown),
    so a triplet first seen just before a restart counts from then."""
    t = make_tern(config={**NOT_MYNET, "greylist": "yes", "greylist_delay": "1s"}).start()

    def rcpt():
        c = helo(t)
        c.expect("MAIL FROM:<s@example.net>", r"^250")
        r = c.cmd("RCPT TO:<alice@localhost>")
        c.close()
        return r.code

    assert rcpt() == 451
    t.restart()  # at once: the once-a-second save has not run yet
    assert "<s@example.net> <alice@localhost>" in (t.spool / "greylist").read_text()
    time.sleep(1.2)
    assert rcpt() == 250  # the first try before the restart was remembered
    t.wait_log(r"greylist: loaded 1 triplets")
