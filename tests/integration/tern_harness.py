"""
tern_harness.py - run a tern daemon in a private temp dir and talk SMTP to it.

What it does: writes a config (absolute paths, listen = 127.0.0.1:0,
mynetworks = 127.0.0.1/32) and the three tables into a test's tmp_path,
starts build/tern (or $TERN_BIN) with stderr+stdout appended to
<tmp>/tern.log, reads the port from the "listening on 127.0.0.1:PORT
mode=smtp" line, and offers helpers: raw-socket SMTP client with a dialogue
helper, smtplib sending, Maildir inspection, log polling.

Guarantees: every daemon started through a Tern object is registered so the
conftest fixture stops it (SIGTERM, exit 0 asserted) even when a test fails;
with TERN_ASAN=1 every stop checks the log for sanitizer reports and every
timeout is multiplied by TIME_FACTOR.

Must not: touch anything outside its temp dir, or bend to a daemon behaviour
that differs from the documented one (README.md and docs/: the contract).
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TERN_BIN = os.environ.get("TERN_BIN") or str(REPO / "build" / "tern")
ASAN = os.environ.get("TERN_ASAN") == "1"
# tern refuses to run as root: started by root (as in CI), the daemon binds
# its ports, then runs as this unprivileged user, like a real installation
RUN_AS = "nobody" if os.geteuid() == 0 else None
TIME_FACTOR = 3.0 if ASAN else 1.0

# RFC 3463 enhanced status code right after the reply code (RFC 2034 §4)
ENH_RE = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(\s|$)")
QID_RE = re.compile(r"queued as ([0-9A-Z]{16})\b")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def tf(seconds):
    """A timeout scaled for sanitizer builds."""
    return seconds * TIME_FACTOR


DEFAULT_MAILBOXES = [
    "alice@localhost",
    "bob@localhost",
    "carol@localhost",
    "alice@example.com",
]
DEFAULT_ALIASES = [
    "postmaster: alice",
    "team: alice, bob",
]
DEFAULT_VIRTUAL = [
    "info@example.org alice@localhost",
    "@example.org bob@localhost",
]
DEFAULT_CONFIG = {
    "hostname": "tern.test",
    "local_domains": "localhost example.com",
    "virtual_domains": "example.org",
    "recipient_delimiter": "+",
    "mynetworks": "127.0.0.1/32",
    # inbound mail authentication (docs/authentication.md) asks DNS for every
    # client outside mynetworks: off unless a test serves the records itself
    # (test_mailauth.py), so that no test reaches the machine's resolver
    "spf_check": "no",
    "dkim_verify": "no",
    "dmarc_check": "no",
    "arc_verify": "no",
    "message_size_limit": "1M",
    "max_recipients": "100",
    "max_line_length": "1000",
    "max_command_length": "512",
    "max_errors": "20",
    "max_sessions": "1000",
    "max_sessions_per_ip": "50",
    "timeout_command": "30s",
    "timeout_data": "30s",
    "local_concurrency": "8",
    # tests stop and start peers within seconds and retry after 1 s: a host
    # that failed is not remembered unless a test asks (test_mx.py)
    "smtp_dead_host_time": "0",
    "user": RUN_AS,
}


def open_for(user, path):
    """Let user reach path as the daemon would after dropping root: give
    every ancestor directory that lacks it search permission for others
    (pytest's tmp dirs are 0700), and hand the daemon's own directory tree
    to the user (tables, keys and spool, as an administrator would)."""
    import pwd
    pw = pwd.getpwnam(user)
    p = Path(path).resolve()
    for anc in list(p.parents)[::-1]:
        mode = anc.stat().st_mode
        if not mode & 0o001:
            os.chmod(anc, (mode & 0o7777) | 0o001)
    for root, dirs, files in os.walk(p):
        for name in [root] + [os.path.join(root, x) for x in dirs + files]:
            try:
                os.lchown(name, pw.pw_uid, pw.pw_gid)
            except FileNotFoundError:
                pass
    mode = p.stat().st_mode
    if not mode & 0o001:
        os.chmod(p, (mode & 0o7777) | 0o001)


def _released(pid):
    """True once a killed process holds no descriptor any more. Its leader
    shows Z as soon as the main thread is gone, but the descriptor table
    (the listening sockets among them) is shared by every thread and freed
    only when the last one exits: a pool thread inside fdatasync on a busy
    disk can keep the old daemon's sockets open for a while."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            if not f.read().split(") ", 1)[1].startswith("Z"):
                return False
        return len(os.listdir("/proc/%d/task" % pid)) <= 1 and not os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return True  # gone (or its fd table already released)



def _maildir_order(path):
    m = re.match(r"(\d+)\.M(\d+)", path.name)
    return (int(m.group(1)), int(m.group(2)), path.name) if m else (0, 0, path.name)

class Tern:
    """One tern daemon in its own directory (normally the test's tmp_path)."""

    registry = None  # list set by the conftest fixture: every Tern made is appended

    def __init__(self, tmp, config=None, mailboxes=None, aliases=None, virtual=None,
                 extra_mailboxes=(), raw_config=None):
        self.dir = Path(tmp)
        self.spool = self.dir / "spool"
        self.mail_base = self.dir / "mail"
        self.conf_path = self.dir / "tern.conf"
        self.log_path = self.dir / "tern.log"
        self.mailboxes_path = self.dir / "mailboxes"
        self.aliases_path = self.dir / "aliases"
        self.virtual_path = self.dir / "virtual"
        self.proc = None
        self.port = None
        self.terminating = False
        self.log_offset = 0  # where the current run's log starts
        self.config = dict(DEFAULT_CONFIG)
        self.config.update(config or {})
        self.mailboxes = list(DEFAULT_MAILBOXES if mailboxes is None else mailboxes)
        self.mailboxes += list(extra_mailboxes)
        self.aliases = list(DEFAULT_ALIASES if aliases is None else aliases)
        self.virtual = list(DEFAULT_VIRTUAL if virtual is None else virtual)
        self.raw_config = raw_config
        self.write_files()
        if Tern.registry is not None:
            Tern.registry.append(self)

    # ---- files ----
    def write_tables(self):
        self.mailboxes_path.write_text("".join(m + "\n" for m in self.mailboxes), encoding="utf-8")
        self.aliases_path.write_text("".join(a + "\n" for a in self.aliases), encoding="utf-8")
        self.virtual_path.write_text("".join(v + "\n" for v in self.virtual), encoding="utf-8")

    def write_files(self):
        self.write_tables()
        if self.raw_config is not None:
            self.conf_path.write_text(self.raw_config, encoding="utf-8")
            return
        lines = [
            "# written by tests/integration/tern_harness.py",
            "listen = 127.0.0.1:0",
            "spool_dir = %s" % self.spool,
            "maildir_base = %s" % self.mail_base,
            "mailboxes = %s" % self.mailboxes_path,
            "aliases = %s" % self.aliases_path,
            "virtual = %s" % self.virtual_path,
        ]
        if "local_socket" not in self.config:  # not the shared default, /run/tern/tern.sock
            lines.append("local_socket = %s" % (self.dir / "tern.sock"))
        for k, v in self.config.items():
            if v is not None:
                lines.append("%s = %s" % (k, v))
        self.conf_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ---- process ----
    def command(self, *args):
        return [TERN_BIN, "-c", str(self.conf_path)] + list(args)

    @staticmethod
    def env():
        e = dict(os.environ)
        if ASAN:
            e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
            e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        return e

    def start(self, timeout=10):
        assert self.proc is None, "already running"
        assert os.path.exists(TERN_BIN), "no daemon binary at %s (set TERN_BIN)" % TERN_BIN
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        if RUN_AS and self.config.get("user") == RUN_AS:
            open_for(RUN_AS, self.dir)
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command("run"), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, env=self.env(),
                                         cwd=str(self.dir))
        finally:
            logf.close()
        deadline = time.monotonic() + tf(timeout)
        pat = re.compile(r"listening on 127\.0\.0\.1:(\d+) mode=smtp")
        # the local socket is bound (and made 0666) after the TCP listeners:
        # wait for it too, or a test may find it half made
        local = re.compile(r"listening on \S+ mode=local") if self.config.get(
            "local_socket", True) else None
        while True:
            log = self.run_log()
            m = pat.search(log)
            if m and (local is None or local.search(log)):
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise AssertionError("tern exited with %s before listening:\n%s"
                                     % (rc, self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("tern not listening after %.0fs:\n%s"
                                     % (tf(timeout), self.tail()))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.proc is not None
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.terminating = True
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM, wait, assert a clean exit (0) and, under ASan, a clean log."""
        if self.proc is None:
            self.check_sanitizers()
            return
        proc = self.proc
        if proc.poll() is None and not self.terminating:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(tf(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.proc = None
            self.terminating = False
            raise AssertionError("tern did not exit within %.0fs of SIGTERM:\n%s"
                                 % (tf(timeout), self.tail()))
        self.proc = None
        self.port = None
        self.terminating = False
        assert rc == 0, "tern exit code %s after SIGTERM:\n%s" % (rc, self.tail())
        self.check_sanitizers()

    def daemon_pid(self):
        """The pid of the daemon proper: started as root, tern forks and the
        process we started stays as its privileged parent (docs/security.md,
        "Privilege separation"); the daemon is its one child."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        return kids[0] if kids else pid

    def kill9(self):
        """A crash: SIGKILL to the daemon (and to its privileged parent)."""
        assert self.proc is not None
        child = self.daemon_pid()
        if child != self.proc.pid:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait()
        if child != self.proc.pid:  # gone before a new daemon starts on this spool
            deadline = time.monotonic() + tf(10)
            while not _released(child) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.proc = None
        self.port = None
        self.terminating = False

    def restart(self):
        self.stop()
        return self.start()

    def check_sanitizers(self):
        if not ASAN:
            return
        text = self.log
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report (%s) in the log:\n%s" % (
                marker, self.tail(200))

    # ---- log ----
    @property
    def log(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def run_log(self):
        """The log of the current (last) run only."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=60):
        return "\n".join(self.log.splitlines()[-n:])

    def port_of(self, mode):
        """The port of this run's listener in that mode (smtp, submission, smtps), from the
        "listening on 127.0.0.1:PORT mode=MODE" line."""
        m = self.wait_log(r"listening on 127\.0\.0\.1:(\d+) mode=%s\b" % re.escape(mode), timeout=5)
        return int(m.group(1))

    def wait_log(self, regex, timeout=10, whole=False):
        """Poll the log (this run's part, or all of it) until regex matches; returns the match."""
        pat = re.compile(regex)
        deadline = time.monotonic() + tf(timeout)
        while True:
            m = pat.search(self.log if whole else self.run_log())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("log never matched %r within %.0fs:\n%s"
                                     % (regex, tf(timeout), self.tail()))
            time.sleep(0.05)

    # ---- mail ----
    def maildir(self, mailbox):
        local, _, domain = mailbox.rpartition("@")
        return self.mail_base / domain / local

    def messages(self, mailbox):
        md = self.maildir(mailbox)
        out = []
        for sub in ("new", "cur"):
            d = md / sub
            if d.is_dir():
                out += [p for p in d.iterdir() if p.is_file()]
        # delivery order: maildir names are SEC.MUSEC... with USEC not zero-padded,
        # so a plain name sort puts .M215000 before .M55000 of the same second
        return sorted(out, key=_maildir_order)

    def wait_delivered(self, mailbox, count, timeout=10):
        """Wait until the mailbox holds at least count messages; return their files."""
        deadline = time.monotonic() + tf(timeout)
        while True:
            msgs = self.messages(mailbox)
            if len(msgs) >= count:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError("%s: %d messages, expected %d after %.0fs:\n%s"
                                     % (mailbox, len(msgs), count, tf(timeout), self.tail()))
            time.sleep(0.05)

    def queue_files(self, sub="queue"):
        d = self.spool / sub
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir())

    def wait_queue_empty(self, timeout=10):
        deadline = time.monotonic() + tf(timeout)
        while True:
            left = self.queue_files("queue")
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError("queue not empty after %.0fs: %s\n%s"
                                     % (tf(timeout), left, self.tail()))
            time.sleep(0.05)

    # ---- SMTP ----
    def client(self, source=None, timeout=10):
        return Client(self.port, source=source, timeout=timeout)

    def smtp(self, source=None, timeout=10):
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test",
                            source_address=(source, 0) if source else None,
                            timeout=tf(timeout))

    def send(self, to, sender="sender@example.com", msg=None, subject=None, body=None,
             helo=False, mail_options=(), rcpt_options=(), source=None, msgid=None):
        """Send one message with smtplib; returns the queue ID from the 250 reply.
        to: an address or a list. Raises AssertionError on any non-2xx/3xx."""
        rcpts = [to] if isinstance(to, str) else list(to)
        if msg is None:
            msg = make_message(subject=subject, body=body, to=rcpts[0], sender=sender,
                               msgid=msgid)
        s = self.smtp(source=source)
        try:
            if helo:
                code, resp = s.helo()
            else:
                code, resp = s.ehlo()
            assert code == 250, (code, resp)
            return send_on(s, rcpts, sender, msg, mail_options, rcpt_options)
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()


def send_on(s, rcpts, sender, msg, mail_options=(), rcpt_options=()):
    """One transaction on an open smtplib.SMTP; returns the queue ID."""
    code, resp = s.mail(sender, list(mail_options))
    assert code == 250, ("MAIL", code, resp)
    for r in rcpts:
        code, resp = s.rcpt(r, list(rcpt_options))
        assert code in (250, 251), ("RCPT", r, code, resp)
    code, resp = s.data(msg)
    assert code == 250, ("DATA", code, resp)
    m = QID_RE.search(resp.decode("utf-8", "replace"))
    assert m, "no queue ID in %r" % resp
    return m.group(1)


def make_message(subject=None, body=None, to="alice@localhost", sender="sender@example.com",
                 msgid=None, headers=()):
    """A small RFC 5322 message (bytes, CRLF)."""
    msgid = msgid or "<%s@test.example>" % uuid.uuid4().hex
    subject = subject or "test " + msgid.strip("<>")
    body = body if body is not None else "Hello.\r\nThis is a test.\r\n"
    lines = ["From: <%s>" % sender, "To: <%s>" % to, "Subject: %s" % subject,
             "Message-ID: %s" % msgid, "Date: Sat, 28 Nov 2026 13:31:00 +0000"]
    lines += list(headers)
    text = "\r\n".join(lines) + "\r\n\r\n" + body
    return text.encode("utf-8") if isinstance(text, str) else text


class Mail:
    """A delivered Maildir file: raw bytes, unfolded headers, body."""

    def __init__(self, path):
        self.path = Path(path)
        self.raw = self.path.read_bytes()
        head, sep, body = self.raw.partition(b"\n\n")
        self.body = body if sep else b""
        text = head.decode("utf-8", "replace")
        text = re.sub(r"\r?\n[ \t]+", " ", text)
        self.headers = []
        for line in text.split("\n"):
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def get(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def header_names(self):
        return [k for k, _ in self.headers]


def count_by_msgid(paths):
    """{Message-ID: number of files}"""
    counts = {}
    for p in paths:
        mid = Mail(p).get("Message-ID")
        counts[mid] = counts.get(mid, 0) + 1
    return counts


class Reply:
    def __init__(self, lines):
        self.lines = lines  # decoded text lines without CRLF
        self.code = int(lines[-1][:3])
        self.cmd = None  # the command line it answers, when read through Client.cmd()

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % self.text


class Client:
    """A raw-socket SMTP client: exactly the bytes you write go on the wire."""

    def __init__(self, port, source=None, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(tf(timeout))
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.replies = []  # every reply read, in order
        self.greeting = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def reply(self):
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            line = self._line()
            assert re.match(r"^\d{3}[ -]", line), "malformed reply line %r" % line
            lines.append(line)
            if line[3] == " ":
                break
        r = Reply(lines)
        self.replies.append(r)
        return r

    def read_greeting(self):
        self.greeting = self.reply()
        self.greeting.cmd = "<greeting>"
        return self.greeting

    def cmd(self, line):
        """Send one command line (CRLF added) and read its reply."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        r = self.reply()
        r.cmd = line if isinstance(line, str) else line.decode("utf-8", "replace")
        return r

    def expect(self, line, regex):
        r = self.cmd(line)
        assert re.search(regex, r.text), "%r -> %r, expected /%s/" % (line, r.text, regex)
        return r

    def dialogue(self, pairs):
        """[(line or None, regex)]: send each line (None: send nothing) and check the reply."""
        out = []
        for line, regex in pairs:
            if line is None:
                r = self.reply()
                assert re.search(regex, r.text), "got %r, expected /%s/" % (r.text, regex)
            else:
                r = self.expect(line, regex)
            out.append(r)
        return out

    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def at_eof(self, timeout=5):
        """True when the server closes the connection within timeout (data read is kept)."""
        self.sock.settimeout(tf(timeout))
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def read_all_replies(self, timeout=3):
        """Read replies until the server closes or is quiet for timeout seconds."""
        out = []
        self.sock.settimeout(tf(timeout))
        try:
            while True:
                out.append(self.reply())
        except (socket.timeout, EOFError, ConnectionResetError):
            pass
        return out


def check_enhanced(replies):
    """Every reply line carries an RFC 3463 code, except the greeting and the
    EHLO/HELO replies (RFC 2034 §4 allows that)."""
    bad = []
    for r in replies:
        c = (r.cmd or "").upper()
        if c == "<GREETING>" or c.startswith("EHLO") or c.startswith("HELO"):
            continue
        for line in r.lines:
            if not ENH_RE.match(line):
                bad.append((r.cmd, line))
    assert not bad, "replies without an enhanced status code: %r" % bad


def body_of(path):
    return Mail(path).body


# ---- outbound peers and the queue tools (test_retry_bounce.py, test_queue_tools.py) ----

def run_tool(tern, *args, timeout=30):
    """Run `tern -c CONF ARGS...` (the queue tools); returns CompletedProcess (text)."""
    return subprocess.run(tern.command(*args), capture_output=True, text=True,
                          env=Tern.env(), timeout=tf(timeout))


class Peer:
    """A scripted SMTP server on 127.0.0.1 (port chosen by the kernel), run
    by asyncio in a thread. Written by hand (not aiosmtpd) so that it can
    misbehave exactly: modes
      accept      250 to everything
      rcpt451     451 4.3.0 to every RCPT
      rcpt550     550 5.1.1 to every RCPT
      temp:N      451 4.3.0 to the first N RCPTs, then 250
      bylocal     by the recipient's local part: bad* 550 5.1.1, later* 451 4.3.0,
                  anything else 250
      dropdata    after 354, read one line of content and drop the connection
      hang        accept the connection and say nothing
      slow:S      wait S seconds before answering MAIL
    It advertises PIPELINING, 8BITMIME and ENHANCEDSTATUSCODES (no DSN).
    Records every accepted message as (mail_from, [rcpts], content bytes)
    in .messages, and counts .connections and .rcpts (RCPT commands seen)."""

    def __init__(self, mode="accept"):
        import asyncio
        import threading
        self.mode = mode
        self.messages = []
        self.connections = 0
        self.rcpts = 0
        self.lock = threading.Lock()
        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = None

        def runner():
            asyncio.set_event_loop(self.loop)

            async def start():
                self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                self.port = self.server.sockets[0].getsockname()[1]
                ready.set()
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=runner, daemon=True)
        self.thread.start()
        assert ready.wait(10), "peer did not start"

    def stop(self):
        asyncio = self._asyncio

        async def shut():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(shut()))
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_messages(self, count, timeout=10):
        deadline = time.monotonic() + tf(timeout)
        while True:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError("peer got %d messages, expected %d" % (len(self.messages), count))
            time.sleep(0.05)

    def _rcpt_reply(self, addr):
        with self.lock:
            self.rcpts += 1
            n = self.rcpts
        m = self.mode
        if m == "rcpt451" or (m.startswith("temp:") and n <= int(m[5:])):
            return b"451 4.3.0 <%s>: try again later\r\n" % addr, False
        if m == "rcpt550" or (m == "bylocal" and addr.startswith(b"bad")):
            return b"550 5.1.1 <%s>: no such user here\r\n" % addr, False
        if m == "bylocal" and addr.startswith(b"later"):
            return b"451 4.3.0 <%s>: try again later\r\n" % addr, False
        return b"250 2.1.5 Ok\r\n", True

    async def _handle(self, reader, writer):
        asyncio = self._asyncio
        with self.lock:
            self.connections += 1
        try:
            if self.mode == "hang":
                await asyncio.sleep(3600)
                return
            writer.write(b"220 peer.test ESMTP scripted\r\n")
            mail_from, rcpts = None, []
            while True:
                line = await reader.readline()
                if not line:
                    return
                cmd = line.strip().decode("utf-8", "replace")
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    writer.write(b"250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                 b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == "HELO":
                    writer.write(b"250 peer.test\r\n")
                elif verb == "MAIL":
                    if self.mode.startswith("slow:"):
                        await asyncio.sleep(float(self.mode[5:]))
                    m = re.search(r"<([^>]*)>", cmd)
                    mail_from, rcpts = (m.group(1) if m else ""), []
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == "RCPT":
                    m = re.search(r"<([^>]*)>", cmd)
                    addr = m.group(1) if m else ""
                    reply, ok = self._rcpt_reply(addr.encode())
                    if ok:
                        rcpts.append(addr)
                    writer.write(reply)
                elif verb == "DATA":
                    writer.write(b"354 3.0.0 go ahead\r\n")
                    await writer.drain()
                    data = b""
                    while True:
                        chunk = await reader.readline()
                        if not chunk:
                            return
                        if self.mode == "dropdata":
                            writer.close()
                            return
                        if chunk == b".\r\n":
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    if not rcpts:
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                    else:
                        with self.lock:
                            self.messages.append((mail_from, list(rcpts), data))
                        writer.write(b"250 2.0.0 Ok: queued\r\n")
                    mail_from, rcpts = None, []
                elif verb in ("RSET", "NOOP"):
                    mail_from, rcpts = None, []
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"500 5.5.2 what?\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


def free_port():
    """A TCP port on 127.0.0.1 where nothing listens (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_cert(directory, name="cert", cn="tern.test", dns=("tern.test", "localhost"), ips=("127.0.0.1",)):
    """A self-signed certificate and its key (PEM files DIR/NAME.pem and DIR/NAME.key), made
    with `openssl req -x509`; the names go into subjectAltName. Returns (cert, key) paths."""
    directory = Path(directory)
    cert, key = directory / (name + ".pem"), directory / (name + ".key")
    san = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)  # tern refuses a key others can read
    return cert, key


def tls_client_context():
    """A client SSLContext that accepts any certificate (the tests' are self-signed)."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
