"""
test_milter_real.py - tern's milter client against the real programs a
Postfix site runs (recipes: ../shared/recipes.md, "Mail filters"):
  clamd + clamav-milter with a private signature database holding only the
    EICAR test signature: EICAR refused 5xx, also base64 in a MIME
    attachment; a clean message delivered with clamav-milter's headers;
  rspamd 3.4 as a milter (rspamd_proxy, milter = yes), no Redis, no DNS:
    GTUBE refused, a clean message delivered with rspamd's headers;
  opendkim signing mail relayed from mynetworks: python3-dkim verifies it;
  spamass-milter 0.4 with spamd 4.0 (local rules only, -L): GTUBE refused,
    a clean message delivered with X-Spam-Status.
Each program runs in the foreground in the module's temp directory on a
port of 127.0.0.1, once per module (rspamd takes 2-3 s to start), and is
stopped at the end. Packages: scripts/deps.sh.
"""

import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import dkim
import pytest

from tern_harness import Peer, make_message, tf

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def milter_ready(port, timeout):
    """True once the milter answers an option negotiation (SMFIC_OPTNEG)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
                hdr = s.recv(5)
                if len(hdr) == 5 and hdr[4:5] == b"O":
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Proc:
    def __init__(self, argv, cwd, log):
        self.log = log
        with open(log, "ab") as f:
            self.p = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=f,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


@pytest.fixture(scope="module")
def clamav(tmp_path_factory):
    d = tmp_path_factory.mktemp("clamav")
    (d / "db").mkdir()
    (d / "db" / "test-eicar.ndb").write_text("Test-EICAR:0:*:%s\n" % EICAR.hex())
    (d / "clamd.conf").write_text(
        "Foreground yes\nLocalSocket %s/clamd.sock\nDatabaseDirectory %s/db\n"
        "TemporaryDirectory %s\nLogFile %s/clamd.log\n" % (d, d, d, d))
    port = free_port()
    (d / "clamav-milter.conf").write_text(
        "Foreground yes\nMilterSocket inet:%d@127.0.0.1\nClamdSocket unix:%s/clamd.sock\n"
        "OnClean Accept\nOnInfected Reject\nOnFail Defer\nAddHeader Replace\n"
        "RejectMsg \"Virus found: %%v\"\nLogFile %s/milter.log\n" % (port, d, d))
    clamd = Proc(["clamd", "-c", str(d / "clamd.conf")], d, d / "clamd.out")
    procs = [clamd]
    try:
        deadline = time.monotonic() + tf(20)
        while True:  # clamd answers zPING with PONG once its database is loaded
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(d / "clamd.sock"))
                    s.sendall(b"zPING\0")
                    if s.recv(10).startswith(b"PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (d / "clamd.out").read_text()
            time.sleep(0.05)
        procs.append(Proc(["clamav-milter", "-c", str(d / "clamav-milter.conf")], d,
                          d / "milter.out"))
        assert milter_ready(port, tf(10)), "clamav-milter not ready"
        yield "clamav inet:%d@127.0.0.1" % port
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    d = tmp_path_factory.mktemp("rspamd")
    (d / "plugins").mkdir()
    shutil.copy("/usr/share/rspamd/plugins/milter_headers.lua", d / "plugins")
    # a few-line TLD list: the stock public-suffix list costs ~15 s of start-up
    (d / "tld.dat").write_text("com\norg\nnet\ntest\nexample\nlocalhost\n")
    port = free_port()
    (d / "rspamd.conf").write_text("""
options {
  filters = "";
  pidfile = "%(d)s/rspamd.pid";
  dns { nameserver = "127.0.0.1:1"; }
  local_addrs = [];
  url_tld = "%(d)s/tld.dat";
}
logging { type = "file"; filename = "%(d)s/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
  milter = yes;
  bind_socket = "127.0.0.1:%(port)d";
  upstream "local" { default = yes; self_scan = yes; }
  count = 1;
}
modules { path = "%(d)s/plugins"; }
milter_headers {
  use = ["x-spamd-result", "x-rspamd-queue-id", "x-spam-status"];
  extended_spam_headers = true;
  skip_local = false;
  skip_authenticated = false;
}
""" % {"d": d, "port": port})
    argv = ["rspamd", "-f", "-c", str(d / "rspamd.conf")]
    if os.geteuid() == 0:
        argv += ["-u", "root", "-g", "root", "-i"]
    p = Proc(argv, d, d / "rspamd.out")
    try:
        assert milter_ready(port, tf(30)), (d / "rspamd.out").read_text()
        yield "rspamd inet:%d@127.0.0.1" % port
    finally:
        p.stop()


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory):
    d = tmp_path_factory.mktemp("opendkim")
    subprocess.run(["openssl", "genrsa", "-out", str(d / "dkim.key"), "2048"], check=True,
                   capture_output=True)
    pub = subprocess.run(["openssl", "rsa", "-in", str(d / "dkim.key"), "-pubout", "-outform",
                          "DER"], check=True, capture_output=True).stdout
    port = free_port()
    (d / "opendkim.conf").write_text(
        "Syslog no\nBackground no\nMode s\nDomain example.com\nSelector sel\nKeyFile %s/dkim.key\n"
        "RequireSafeKeys false\nCanonicalization relaxed/simple\nInternalHosts 127.0.0.1\n"
        "Socket inet:%d@127.0.0.1\nPidFile %s/opendkim.pid\n" % (d, port, d))
    p = Proc(["opendkim", "-f", "-x", str(d / "opendkim.conf")], d, d / "opendkim.out")
    try:
        assert milter_ready(port, tf(10)), (d / "opendkim.out").read_text()
        yield "opendkim inet:%d@127.0.0.1" % port, b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
    finally:
        p.stop()


@pytest.fixture(scope="module")
def spamassassin(tmp_path_factory):
    """spamd (local tests only: -L, no DNS or network rules) and
    spamass-milter in front of it on a socket in the test's directory, the
    way Debian's /etc/default/spamass-milter sets them up (its init script
    makes the socket writable for the MTA's user: here, chmod)."""
    d = tmp_path_factory.mktemp("spamassassin")
    os.chmod(d, 0o755)
    port = free_port()
    argv = ["spamd", "-x", "-L", "--listen=127.0.0.1:%d" % port, "--allowed-ips=127.0.0.1",
            "--pidfile=%s/spamd.pid" % d, "-s", "%s/spamd.log" % d]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    procs = [Proc(argv, d, d / "spamd.out")]
    sock = d / "spamass.sock"
    try:
        deadline = time.monotonic() + tf(60)  # perl compiles the rules: 3-6 s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    if b"PONG" in c.recv(64):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (d / "spamd.out").read_text()
            time.sleep(0.2)
        procs.append(Proc(["spamass-milter", "-p", str(sock), "-r", "5", "--",
                           "-d", "127.0.0.1", "-p", str(port)], d, d / "milter.out"))
        deadline = time.monotonic() + tf(10)
        while not sock.exists():
            assert time.monotonic() < deadline, (d / "milter.out").read_text()
            time.sleep(0.05)
        os.chmod(sock, 0o666)
        yield "spamassassin unix:%s default_action=accept" % sock
    finally:
        for p in reversed(procs):
            p.stop()


def data_reply(t, msg, to="alice@localhost"):
    s = t.smtp()
    try:
        s.ehlo()
        assert s.mail("sender@example.com")[0] == 250
        assert s.rcpt(to)[0] == 250
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        code, text = s.getreply()
        return code, text.decode()
    finally:
        s.close()


def attachment(payload):
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return make_message(headers=["MIME-Version: 1.0",
                                 'Content-Type: multipart/mixed; boundary="BOUND"'],
                        body="") + (b"--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                        b"--BOUND\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Transfer-Encoding: base64\r\n"
                        b'Content-Disposition: attachment; filename="x.bin"\r\n\r\n' + b64 +
                        b"--BOUND--\r\n")


def test_clamav(make_tern, clamav):
    t = make_tern(config={"milter": clamav, "smtp_milters": "clamav"}).start()
    code, text = data_reply(t, make_message(body=EICAR.decode() + "\r\n"))
    assert code == 550 and text.startswith("5.7.1 Virus found: Test-EICAR"), (code, text)
    code, text = data_reply(t, attachment(EICAR + b"\n"))
    assert code == 550 and text.startswith("5.7.1 Virus found"), (code, text)
    assert t.queue_files() == []
    t.send("alice@localhost", body="nothing to see here\r\n")
    t.wait_delivered("alice@localhost", 1)
    raw = open(t.messages("alice@localhost")[0], "rb").read()
    assert b"X-Virus-Status: Clean" in raw
    assert "milter=clamav stage=eom verdict=reject" in t.log


def test_rspamd(make_tern, rspamd):
    t = make_tern(config={"milter": rspamd, "smtp_milters": "rspamd"}).start()
    code, text = data_reply(t, make_message(body=GTUBE.decode() + "\r\n"))
    assert code == 554 and text == "5.7.1 Gtube pattern", (code, text)
    qid = t.send("alice@localhost", body="a perfectly ordinary message\r\n")
    t.wait_delivered("alice@localhost", 1)
    raw = open(t.messages("alice@localhost")[0], "rb").read()
    assert b"X-Spamd-Result: default: False" in raw
    assert ("X-Rspamd-Queue-Id: %s" % qid).encode() in raw  # macro i reached rspamd
    assert b"X-Spam-Status: No" in raw


def test_clamav_then_rspamd_chain(make_tern, clamav, rspamd):
    t = make_tern(config={"milter": clamav + "\nmilter = " + rspamd,
                          "smtp_milters": "clamav, rspamd"}).start()
    assert data_reply(t, make_message(body=EICAR.decode() + "\r\n"))[0] == 550
    assert data_reply(t, make_message(body=GTUBE.decode() + "\r\n"))[0] == 554
    t.send("alice@localhost")
    t.wait_delivered("alice@localhost", 1)
    raw = open(t.messages("alice@localhost")[0], "rb").read()
    assert b"X-Virus-Status: Clean" in raw and b"X-Spamd-Result" in raw


def test_opendkim_signs_relayed_mail(make_tern, opendkim):
    spec, txt = opendkim
    with Peer("accept") as peer:
        t = make_tern(config={"milter": spec, "smtp_milters": "opendkim",
                              "relayhost": "[127.0.0.1]:%d" % peer.port}).start()
        msg = make_message(sender="someone@example.com", to="far@remote.test",
                           subject="signed")
        t.send("far@remote.test", sender="someone@example.com", msg=msg)
        peer.wait_messages(1)
        content = peer.messages[0][2]
    assert b"DKIM-Signature:" in content

    def dnsfunc(name, timeout=5):
        assert name in (b"sel._domainkey.example.com.", "sel._domainkey.example.com.")
        return txt
    assert dkim.verify(content, dnsfunc=dnsfunc)


def test_spamassassin(make_tern, spamassassin):
    """spamass-milter 0.4 (Debian 12) with spamd 4.0: GTUBE scores 1000 and
    is refused (-r 5); clean mail arrives with SpamAssassin's headers."""
    t = make_tern(config={"milter": spamassassin, "smtp_milters": "spamassassin"}).start()
    code, text = data_reply(t, make_message(body=GTUBE.decode() + "\r\n"))
    assert code == 550 and text == "5.7.1 Blocked by SpamAssassin", (code, text)
    t.send("alice@localhost", body="a perfectly ordinary message\r\n")
    t.wait_delivered("alice@localhost", 1)
    raw = open(t.messages("alice@localhost")[0], "rb").read()
    assert b"X-Spam-Status: No" in raw and b"X-Spam-Checker-Version: SpamAssassin" in raw
