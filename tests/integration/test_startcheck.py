"""
test_startcheck.py - check-config runs the checks "run" runs before it starts
(issue 11, items 2 and 5), so the systemd unit's ExecStartPre fails exactly
when ExecStart would.

Checked, each with check-config and run refusing alike, the message naming
the configuration line of the key, the key and the file: a missing tls_cert
file; a missing auth_users file; an smtps listener without a certificate; a
submission listener nobody could authenticate on; a table, spool_dir and
maildir_base the configured user cannot reach (as root); a local_socket whose
directory does not exist ("directory ... does not exist", not libuv's
"permission denied"). A good configuration passes both.
"""

import os
import re
import subprocess

import pytest

from tern_harness import RUN_AS, Tern, make_cert, open_for, tf


def tern(t, *args):
    return subprocess.run(t.command(*args), capture_output=True, text=True, timeout=tf(30),
                          env=Tern.env())


def line_of(t, key):
    for i, line in enumerate(t.conf_path.read_text().splitlines(), 1):
        if line.startswith(key + " ="):
            return i
    raise AssertionError("no %s in %s" % (key, t.conf_path))


def refused(t, pattern):
    """check-config and run both refuse, each saying pattern."""
    if RUN_AS:
        open_for(RUN_AS, t.dir)
    c = tern(t, "check-config")
    assert c.returncode == 1, (c.returncode, c.stdout, c.stderr)
    assert re.search(pattern, c.stderr), c.stderr
    assert "config ok" not in c.stdout
    r = tern(t, "run")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(pattern, r.stderr), r.stderr
    assert "started" not in r.stderr
    return c.stderr


def test_good_config_passes(make_tern, tmp_path):
    cert, key = make_cert(tmp_path)
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key)})
    if RUN_AS:
        open_for(RUN_AS, t.dir)
    c = tern(t, "check-config")
    assert c.returncode == 0, c.stderr
    assert "config ok" in c.stdout


def test_missing_tls_cert(make_tern, tmp_path):
    t = make_tern(config={"tls_cert": str(tmp_path / "nope.pem")})
    refused(t, r"%s:%d: tls_cert %s: No such file or directory"
            % (re.escape(str(t.conf_path)), line_of(t, "tls_cert"),
               re.escape(str(tmp_path / "nope.pem"))))


def test_missing_auth_users(make_tern, tmp_path):
    cert, key = make_cert(tmp_path)
    users = tmp_path / "passwd"
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key), "auth_users": str(users)})
    refused(t, r"%s:%d: auth_users %s: No such file or directory"
            % (re.escape(str(t.conf_path)), line_of(t, "auth_users"), re.escape(str(users))))


def test_smtps_without_certificate(make_tern):
    t = make_tern(config={"listen": "127.0.0.1:0 smtps"})
    refused(t, r"listen 127\.0\.0\.1:0 smtps: needs a certificate \(tls_cert\)")


def test_submission_without_authentication(make_tern, tmp_path):
    cert, key = make_cert(tmp_path)
    t = make_tern(config={"tls_cert": str(cert), "tls_key": str(key),
                          "listen": "127.0.0.1:0 submission"})
    refused(t, r"listen 127\.0\.0\.1:0 submission: needs tls_cert and auth_users")


def test_missing_socket_directory(make_tern, tmp_path):
    sock = tmp_path / "no" / "such" / "tern.sock"
    t = make_tern(config={"local_socket": str(sock)})
    err = refused(t, r"local_socket %s: directory %s does not exist"
                  % (re.escape(str(sock)), re.escape(str(sock.parent))))
    assert "ermission denied" not in err


@pytest.mark.skipif(not RUN_AS, reason="the user tern runs as differs from ours only as root")
def test_files_the_user_cannot_reach(make_tern, tmp_path):
    t = make_tern()
    open_for(RUN_AS, t.dir)
    os.chown(t.aliases_path, 0, 0)
    os.chmod(t.aliases_path, 0o600)  # root only: loads at start, fails at every reload
    c = tern(t, "check-config")
    assert c.returncode == 1, c.stdout + c.stderr
    assert re.search(r"%s:%d: aliases %s: user nobody cannot read it \(Permission denied\)"
                     % (re.escape(str(t.conf_path)), line_of(t, "aliases"),
                        re.escape(str(t.aliases_path))), c.stderr), c.stderr
    r = tern(t, "run")
    assert r.returncode == 1 and "aliases %s: user nobody cannot read it" % t.aliases_path in r.stderr
    # a spool the user cannot reach
    os.chmod(t.aliases_path, 0o644)
    os.chown(t.dir, 0, 0)
    os.chmod(t.dir, 0o700)
    c = tern(t, "check-config")
    assert c.returncode == 1
    assert re.search(r"spool_dir %s: user nobody cannot" % re.escape(str(t.spool)), c.stderr), c.stderr


@pytest.mark.skipif(not RUN_AS, reason="needs root: tern hands the spool to its user")
def test_root_owned_spool_passes_like_run(make_tern):
    """An existing spool_dir and maildir_base that still belong to root (made
    by an administrator or a package) are fine: run gives them to tern's user
    before dropping root, so check-config must not refuse them (it did: the
    bench's check and a fresh install's ExecStartPre failed where run worked)."""
    t = make_tern()
    open_for(RUN_AS, t.dir)
    for d in (t.spool, t.mail_base):
        d.mkdir(exist_ok=True)
        os.chown(d, 0, 0)
        os.chmod(d, 0o700)
    c = tern(t, "check-config")
    assert c.returncode == 0, c.stdout + c.stderr
    assert "config ok" in c.stdout
    t.start()
    assert t.spool.stat().st_uid != 0
