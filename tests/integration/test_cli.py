"""
test_cli.py - the conventions an administrator expects of the commands
(issue 11): --help, -h, help and --version everywhere (usage on stdout, exit
0); `tern address` and `sendmail -bv|-bt` (how an address would be routed,
nothing sent); `sendmail -q`, `-bi` and `newaliases` as no-ops that succeed;
`mailq -C FILE`; the mailq and newaliases links `make install` creates.
"""

import os
import re
import subprocess

import pytest

from tern_harness import REPO, TERN_BIN, tf

EX_NOUSER, EX_USAGE = 67, 64


def run(args, binary=TERN_BIN, data=b""):
    return subprocess.run([binary] + list(args), input=data, capture_output=True,
                          timeout=tf(30))


def as_name(tmp_path, name):
    """tern under another name (a symlink), as make install makes it"""
    link = tmp_path / name
    if not link.exists():
        link.symlink_to(TERN_BIN)
    return str(link)


@pytest.mark.parametrize("args", [
    ["--help"], ["-h"], ["help"],
    ["run", "--help"], ["run", "-h"], ["run", "help"],
    ["check-config", "--help"], ["version", "--help"], ["address", "--help"],
    ["queue", "--help"], ["queue", "-h"], ["queue", "help"], ["queue", "list", "--help"],
    ["mailq", "--help"], ["mailq", "help"],
    ["passwd", "--help"], ["passwd", "-h"], ["passwd", "help"],
    ["sendmail", "--help"],
])
def test_help_on_stdout_exit_0(args):
    r = run(args)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    assert r.stdout.startswith(b"usage:"), (args, r.stdout)
    assert r.stderr == b"", (args, r.stderr)


def test_version():
    for args in (["--version"], ["version"]):
        r = run(args)
        assert r.returncode == 0 and re.fullmatch(rb"tern \S+\n", r.stdout), (args, r.stdout)
    r = run(["sendmail", "--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"sendmail (tern "), r.stdout


def test_bad_usage_still_exits_2():
    for args in (["--bogus"], ["nonsense"], []):
        r = run(args)
        assert r.returncode == 2 and b"usage:" in r.stderr, args


def test_sendmail_and_mailq_names(tmp_path, make_tern):
    t = make_tern()  # a config and its tables; no daemon needed
    sendmail = as_name(tmp_path, "sendmail")
    r = run(["--version"], binary=sendmail)
    assert r.returncode == 0 and r.stdout.startswith(b"sendmail (tern "), r.stdout
    r = run(["--help"], binary=sendmail)
    assert r.returncode == 0 and r.stdout.startswith(b"usage: sendmail")
    # scripts call these: they succeed, with a note
    for args in (["-q"], ["-q30m"], ["-bi"]):
        r = run(["-C", str(t.conf_path)] + args, binary=sendmail)
        assert r.returncode == 0, (args, r.stderr)
        assert b"nothing to do" in r.stderr, (args, r.stderr)
    r = run([], binary=as_name(tmp_path, "newaliases"))
    assert r.returncode == 0 and b"newaliases: nothing to do" in r.stderr, r.stderr
    r = run(["-C", str(t.conf_path), "-bd"], binary=sendmail)
    assert r.returncode == EX_USAGE
    # mailq takes -C like sendmail (and -c like tern)
    mailq = as_name(tmp_path, "mailq")
    for opt in (["-C", str(t.conf_path)], ["-C" + str(t.conf_path)], ["-c", str(t.conf_path)]):
        r = run(opt, binary=mailq)
        assert r.returncode == 0 and b"Mail queue is empty" in r.stdout, (opt, r.stderr)
    r = run(["--help"], binary=mailq)
    assert r.returncode == 0 and b"mailq [-c|-C config]" in r.stdout
    r = run(["--version"], binary=mailq)
    assert r.returncode == 0 and r.stdout.startswith(b"mailq (tern ")


def address(t, *addrs):
    r = run(["-c", str(t.conf_path), "address"] + list(addrs))
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_address_expansion_and_destinations(make_tern):
    t = make_tern(config={"relayhost": "[127.0.0.1]:2526"},
                  aliases=["postmaster: alice", "team: alice, bob, far@remote.test",
                           "loop1: loop2", "loop2: loop1", "ghost: nosuch"],
                  virtual=["info@example.org team@localhost", "@example.org bob@localhost"])
    mail = str(t.mail_base)
    rc, out, err = address(t, "team@localhost")
    assert rc == 0, err
    assert out == (
        "<team@localhost>\n"
        "  aliases team -> alice\n"
        "    <alice@localhost>: local mailbox alice@localhost, Maildir %s/localhost/alice\n"
        "  aliases team -> bob\n"
        "    <bob@localhost>: local mailbox bob@localhost, Maildir %s/localhost/bob\n"
        "  aliases team -> far@remote.test\n"
        "    <far@remote.test>: remote, next hop smtp:[127.0.0.1]:2526 (relayhost)\n"
        % (mail, mail)), out
    # virtual, then the alias it names: recursively, as the router does
    rc, out, _ = address(t, "info@example.org")
    assert rc == 0
    assert "  virtual info@example.org -> team@localhost\n    aliases team -> alice\n" in out, out
    # the catch-all, sub-addressing, a bare name (first local domain), <brackets>
    rc, out, _ = address(t, "x@example.org", "alice+tag@localhost", "carol", "<bob@example.com>")
    assert rc == 1  # bob@example.com has no mailbox
    assert "  virtual @example.org -> bob@localhost\n" in out
    assert "<alice+tag@localhost>\n  <alice+tag@localhost>: local mailbox alice@localhost," in out
    assert "<carol@localhost>\n  <carol@localhost>: local mailbox carol@localhost" in out
    assert "<bob@example.com>\n  refused: 550 5.1.1 Recipient address rejected: user unknown\n" in out
    # the refusals RCPT would give
    rc, out, _ = address(t, "nobody@localhost")
    assert rc == 1 and "refused: 550 5.1.1" in out
    rc, out, _ = address(t, "ghost")
    assert rc == 1 and "aliases ghost -> nosuch\n  refused: 550 5.1.1 Recipient address rejected: " \
        "alias target unknown" in out, out
    rc, out, _ = address(t, "loop1")
    assert rc == 1 and "refused: 554 5.4.6 Alias expansion loop" in out
    rc, out, _ = address(t, "far@remote.test")
    assert rc == 0
    assert "refused for clients outside mynetworks without AUTH: 554 5.7.1 Relay access denied" in out
    assert "<far@remote.test>: remote, next hop smtp:[127.0.0.1]:2526 (relayhost)" in out


def test_address_transport_and_mx(make_tern, tmp_path):
    transport = tmp_path / "transport"
    transport.write_text("lmtp.example lmtp:127.0.0.1:24\n.sub.example smtp:[10.0.0.9]:2525\n")
    t = make_tern(config={"transport": str(transport)})
    rc, out, err = address(t, "u@lmtp.example", "u@a.sub.example", "u@example.net")
    assert rc == 0, err
    assert "<u@lmtp.example>: remote, next hop lmtp:127.0.0.1:24 (transport table)" in out
    assert "<u@a.sub.example>: remote, next hop smtp:[10.0.0.9]:2525 (transport table)" in out
    # DNS is not asked: the administrator is told what would be looked up
    assert "<u@example.net>: remote, MX lookup for example.net, then SMTP to port 25" in out
    rc, out, err = address(t)
    assert rc == 2 and "usage:" in err
    bad = make_tern(raw_config="no_such_key = 1\n")
    rc, out, err = address(bad, "a@b")
    assert rc == 1 and "no_such_key" in err


def test_sendmail_bv_bt(make_tern):
    t = make_tern()
    for mode in ("-bv", "-bt"):
        r = run(["-c", str(t.conf_path), "sendmail", mode, "team@localhost", "alice"])
        assert r.returncode == 0, r.stderr
        assert b"aliases team -> alice" in r.stdout and b"<alice@localhost>: local mailbox" in r.stdout
        r = run(["-c", str(t.conf_path), "sendmail", mode, "nobody@localhost"])
        assert r.returncode == EX_NOUSER and b"refused: 550 5.1.1" in r.stdout
    r = run(["-c", str(t.conf_path), "sendmail", "-bv"])
    assert r.returncode == EX_USAGE


@pytest.mark.skipif(not (REPO / "build" / "tern").exists(), reason="make install copies build/tern")
def test_make_install_links(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", str(REPO), "-o", "build/tern", "-o", "build/.deps-ok",
                        "install", "DESTDIR=%s" % dest, "PREFIX=/usr"],
                       capture_output=True, timeout=tf(120))
    assert r.returncode == 0, r.stderr
    for name, target in (("usr/sbin/sendmail", "tern"), ("usr/bin/mailq", "../sbin/tern"),
                         ("usr/bin/newaliases", "../sbin/tern")):
        p = dest / name
        assert p.is_symlink() and os.readlink(p) == target, name
    r = run(["--version"], binary=str(dest / "usr/bin/mailq"))
    assert r.returncode == 0 and r.stdout.startswith(b"mailq (tern ")


# ---- mailq for ordinary users (issue 11.4) ----

class LocalUser:
    """A throw-away local account (useradd), in a throw-away group, removed
    at exit."""

    def __init__(self):
        import pwd
        self.name = "terntest%d" % (os.getpid() % 100000)
        self.group = self.name + "g"
        subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)
        subprocess.run(["groupadd", self.group], check=True, capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "-G", self.group, self.name], check=True, capture_output=True)
        self.uid = pwd.getpwnam(self.name).pw_uid
        self.gid = pwd.getpwnam(self.name).pw_gid
        # what a login gives it: its own group, its supplementary groups
        self.run_as = {"user": self.uid, "group": self.gid, "extra_groups": [self.group]}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["groupdel", self.group], capture_output=True)


def reload(t):
    import signal
    import time
    n = t.run_log().count("reloaded configuration")
    t.write_files()
    t.signal(signal.SIGHUP)
    deadline = time.monotonic() + tf(10)
    while t.run_log().count("reloaded configuration") == n:
        assert time.monotonic() < deadline, t.tail()
        time.sleep(0.05)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a user and run as it")
def test_ordinary_user_lists_the_queue_but_cannot_change_it(make_tern):
    import json
    import shutil
    import tempfile
    from tern_harness import Peer
    shared = tempfile.mkdtemp(prefix="tern-mailq-")
    try:
        os.chmod(shared, 0o755)
        with LocalUser() as user, Peer("rcpt451") as peer:
            t = make_tern(config={
                "local_socket": os.path.join(shared, "tern.sock"),
                "relayhost": "[127.0.0.1]:%d" % peer.port, "retry_min": "1h", "retry_max": "2h",
                "smtp_connect_timeout": "2s", "smtp_command_timeout": "2s"}).start()
            qsock = os.path.join(shared, "tern-queue.sock")
            t.wait_log(r"queue socket %s" % re.escape(qsock))
            assert oct(os.stat(qsock).st_mode & 0o777) == "0o666"
            # one recipient delivered, one deferred, through an alias
            qid = t.send(["far@remote.test", "alice@localhost"], sender="owner@example.com")
            t.wait_log(r"%s: to=<far@remote\.test> .*status=deferred" % qid)
            t.wait_log(r"%s: to=<alice@localhost> .*status=sent" % qid)
            conf = os.path.join(shared, "tern.conf")
            binary = os.path.join(shared, "tern")
            shutil.copy(TERN_BIN, binary)
            os.chmod(binary, 0o755)

            def as_user(*args):
                shutil.copy(t.conf_path, conf)
                os.chmod(conf, 0o644)
                return subprocess.run([binary, "-c", conf] + list(args), capture_output=True,
                                      text=True, timeout=tf(30), env=t.env(), **user.run_as)

            def mailq_as_user():
                link = os.path.join(shared, "mailq")
                if not os.path.exists(link):
                    os.symlink("tern", link)
                return subprocess.run([link, "-C", conf], capture_output=True, text=True,
                                      timeout=tf(30), env=t.env(), **user.run_as)

            # the default, queue_list_users = anyone
            r = as_user("mailq")
            assert r.returncode == 0, r.stderr
            assert qid in r.stdout and "owner@example.com" in r.stdout and "far@remote.test" in r.stdout
            assert "451 4.3.0" in r.stdout  # the reason, as Postfix's mailq shows it
            r2 = mailq_as_user()
            assert r2.returncode == 0 and r2.stdout == r.stdout, r2.stderr
            r = as_user("queue", "list")
            assert r.returncode == 0 and qid in r.stdout, r.stderr
            assert "alice@localhost" not in r.stdout and "maildir" not in r.stdout  # delivered: not theirs
            data = json.loads(as_user("queue", "list", "--json").stdout)
            m = data["messages"][0]
            assert m["queue_id"] == qid and m["sender"] == "owner@example.com"
            assert m["client"] is None and m["envid"] is None
            assert [x["address"] for x in m["recipients"]] == ["far@remote.test"]
            assert "relay" not in json.dumps(m) or m["recipients"][0].get("relay") is None
            # root still sees everything
            full = json.loads(run(["-c", str(t.conf_path), "queue", "list", "--json"]).stdout)
            assert full["messages"][0]["client"] == "127.0.0.1"
            assert len(full["messages"][0]["recipients"]) == 2
            # nothing that changes the queue, nor the message itself
            for args in (("queue", "delete", qid), ("queue", "hold", qid), ("queue", "release", qid),
                         ("queue", "flush"), ("queue", "show", qid)):
                r = as_user(*args)
                assert r.returncode == 1, (args, r.stdout)
                assert "permission denied: only root and nobody may" in r.stderr or \
                    "permission denied: only root and" in r.stderr, (args, r.stderr)
            assert qid in run(["-c", str(t.conf_path), "mailq"]).stdout.decode()  # still there
            # a user cannot tie up the daemon's descriptors: 32 idle connections at most
            hog = ("import socket\n"
                   "s = [socket.socket(socket.AF_UNIX) for _ in range(33)]\n"
                   "[x.connect(%r) for x in s]\n"
                   "print(s[32].recv(100).decode().strip())\n"
                   "s[0].close(); import time; time.sleep(0.3)\n"
                   "x = socket.socket(socket.AF_UNIX); x.connect(%r); x.sendall(b'mailq\\n')\n"
                   "print(x.recv(3).decode())\n" % (qsock, qsock))
            r = subprocess.run(["/usr/bin/python3", "-c", hog], capture_output=True, text=True,
                               timeout=tf(30), **user.run_as)
            assert r.stdout.split("\n")[:2] == ["error: busy: too many queue listings at once; "
                                                 "try again", "ok"], (r.stdout, r.stderr)

            # a list of users and groups
            for value, allowed in (("someoneelse", False), (user.name, True),
                                   ("%" + user.group, True), ("%root", False)):
                t.config["queue_list_users"] = value
                reload(t)
                r = as_user("mailq")
                if allowed:
                    assert r.returncode == 0 and qid in r.stdout, (value, r.stderr)
                else:
                    assert r.returncode == 1 and "permission denied: %s may not list the queue " \
                        "(queue_list_users in" % user.name in r.stderr, (value, r.stderr)
            # none: refused, clearly
            t.config["queue_list_users"] = "none"
            reload(t)
            r = as_user("mailq")
            assert r.returncode == 1 and r.stdout == ""
            assert "listing the queue is for root and nobody only (queue_list_users = none" in \
                r.stderr or "(queue_list_users = none" in r.stderr, r.stderr
            assert run(["-c", str(t.conf_path), "mailq"]).returncode == 0  # root: still
            t.stop()
            r = as_user("mailq")
            assert r.returncode == 1 and "the daemon is not running" in r.stderr, r.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_address_mx_lookup_when_asked(make_tern):
    from test_mx import DNS
    dns = DNS()
    try:
        t = make_tern(config={"dns_servers": "127.0.0.1@%d" % dns.port, "dns_timeout": "5s"})
        rc, out, err = address(t, "u@pref.example")  # not asked: no query
        assert rc == 0 and "(DNS not queried here; --mx does)" in out and dns.queries == []
        r = run(["-c", str(t.conf_path), "address", "--mx", "u@pref.example", "u@implicit.example",
                 "u@nullmx.example", "u@nx.example"])
        out = r.stdout.decode()
        assert r.returncode == 0, r.stderr
        # the daemon's own MX code: preference order, addresses, implicit and null MX
        assert ("<u@pref.example>: remote, MX lookup for pref.example, then SMTP to port 25:\n"
                "    MX 10 mx1.pref.example: 127.0.0.2\n"
                "    MX 20 mx2.pref.example: 127.0.0.3\n") in out, out
        assert "    implicit MX 0 implicit.example: 127.0.0.2\n" in out, out
        assert "    556 5.1.10 " in out and "    550 5.1.2 " in out, out
        assert dns.count("pref.example", "MX") == 1
    finally:
        dns.close()
