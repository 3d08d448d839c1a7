"""
test_logging.py - the fail2ban filter docs/logging.md publishes, against log
lines the daemon really wrote: failed AUTH attempts and a relay attempt
from a client outside mynetworks are matched (with the client's address as
<HOST>), once per attempt; successful logins, accepted mail and other
refusals are not.
"""

import base64
import re
import smtplib

from tern_harness import REPO, make_cert, tf, tls_client_context
from test_auth import passwd

# fail2ban replaces <HOST> with a group named "host" (here a simpler one:
# tern writes the client as a bare IPv4/IPv6 address)
HOST = r"(?:::f{4,6}:)?(?P<host>[0-9A-Fa-f.:]+)"
# fail2ban cuts the date out of the line before matching; what stays in
# front is "tern[PID]: " (stderr) or "HOST tern[PID]: " (syslog), which
# common.conf's __prefix_line matches: this is its gist
PREFIX_LINE = r"\s*(?:\S+ )?(?:tern)(?:\[\d+\])?:\s+"
STDERR_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def published_failregex():
    """the failregex lines of the filter in docs/logging.md"""
    doc = (REPO / "docs" / "logging.md").read_text()
    block = re.search(r"```ini\n(\[INCLUDES\].*?)```", doc, re.S).group(1)
    lines, inside = [], False
    for line in block.splitlines():
        if line.startswith("failregex ="):
            inside = True
            line = line.split("=", 1)[1]
        elif inside and not line.startswith((" ", "\t")):
            break
        if inside and line.strip():
            lines.append(line.strip())
    assert len(lines) == 2, lines
    return [re.compile(x.replace("%(__prefix_line)s", PREFIX_LINE).replace("<HOST>", HOST))
            for x in lines]


def matches(regexes, log):
    """(host, line) for every log line a failregex matches, as fail2ban would"""
    out = []
    for line in log.splitlines():
        line = STDERR_DATE.sub("", line)
        for rx in regexes:
            m = rx.search(line)
            if m:
                out.append((m.group("host"), line))
                break
    return out


def test_fail2ban_filter_matches_auth_failures_and_relay_attempts(make_tern, tmp_path):
    cert, key = make_cert(tmp_path)
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key),
                          "auth_users": str(tmp_path / "users"), "auth_failure_delay": "0",
                          "auth_max_failures": "2", "mynetworks": "127.0.0.1/32"})
    assert passwd(t, "add", "alice@localhost", password="alice-secret-1").returncode == 0
    t.start()

    def tls_session(source):
        s = smtplib.SMTP("127.0.0.1", t.port, local_hostname="client.test",
                         source_address=(source, 0), timeout=tf(15))
        s.ehlo()
        s.starttls(context=tls_client_context())
        s.ehlo()
        return s

    # two wrong passwords from 127.0.0.2 (the second ends the session)
    s = tls_session("127.0.0.2")
    bad = base64.b64encode(b"\0alice\0wrong-password").decode()
    assert s.docmd("AUTH PLAIN", bad)[0] == 535
    assert s.docmd("AUTH PLAIN", bad)[0] == 535  # and 421: auth_max_failures
    s.close()
    # a relay attempt from 127.0.0.3 (outside mynetworks, no AUTH)
    s = tls_session("127.0.0.3")
    s.mail("spammer@example.net")
    code, _ = s.rcpt("victim@elsewhere.example")
    assert code == 554
    code, _ = s.rcpt("nobody@localhost")  # an unknown user: not a relay attempt
    assert code == 550
    s.quit()
    # what must not count: a good login, mail accepted, a relay from mynetworks
    s = tls_session("127.0.0.2")
    s.login("alice@localhost", "alice-secret-1")
    s.sendmail("alice@localhost", ["bob@localhost"], "Subject: ok\r\n\r\nok\r\n")
    s.quit()
    t.send("far@remote.test")  # from 127.0.0.1: relaying allowed
    t.wait_log(r"auth ok user=alice@localhost")
    t.wait_log(r"disconnect session=S4 ")

    log = t.run_log()
    # the lines the filter is about are really there, as docs/logging.md says
    assert re.search(r"S1: auth failed method=PLAIN client=127\.0\.0\.2 failures=1\n", log), log
    assert re.search(r'S2: reject cmd=RCPT reply="554 5\.7\.1 Relay access denied" '
                     r"client=127\.0\.0\.3 to=<victim@elsewhere\.example>\n", log), log
    found = matches(published_failregex(), log)
    assert [h for h, _ in found] == ["127.0.0.2", "127.0.0.2", "127.0.0.3"], found
    assert "auth failed" in found[0][1] and "failures=2" in found[1][1]
    assert "Relay access denied" in found[2][1]
    # the same lines as syslog writes them (host and ident in front) match too
    syslogged = "\n".join("mx " + STDERR_DATE.sub("", x) for x in log.splitlines())
    assert [h for h, _ in matches(published_failregex(), syslogged)] == \
        ["127.0.0.2", "127.0.0.2", "127.0.0.3"]
