"""
test_privsep.py - privilege separation (issue 11, item 1; docs/security.md,
"Privilege separation"): started as root with user = nobody, tern forks; the
root parent opens the secrets, the daemon runs as nobody.

Checked: with a root-only (root:root 0600, in a root-only directory) TLS
certificate, key and password file, a user added with `tern passwd add`
after the start authenticates (AUTH PLAIN under STARTTLS) after SIGHUP to the
process started (systemd's MainPID), and a new key path after SIGHUP to the
daemon itself; a broken key at a reload keeps the old
certificate while the new password file applies, and the log names both; the
local socket in a directory the daemon cannot write to is removed at stop,
and a missing socket directory is made at start; SIGTERM to the parent stops
both processes with status 0; a daemon killed makes the parent exit non-zero.
Must not: run unless root (there is no parent otherwise).
"""

import base64
import os
import signal
import ssl
import stat
import subprocess
import time

import pytest

from tern_harness import Client, make_cert, tf, tls_client_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege separation needs root")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def passwd(t, *args, password=None):
    return subprocess.run(t.command("passwd", *args),
                          input=(password + "\n").encode() if password else b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.env(), timeout=tf(30))


@pytest.fixture
def secrets(tmp_path_factory):
    """A root-only directory like /etc/letsencrypt/live: certificate, key and
    password file root:root 0600 (as openssl and certbot make them)."""
    d = tmp_path_factory.mktemp("secrets")
    os.chmod(d, 0o700)
    cert, key = make_cert(d)
    os.chmod(cert, 0o600)
    os.chmod(key, 0o600)
    users = d / "users"
    users.write_text("")
    os.chmod(users, 0o600)
    return d, cert, key, users


def root_only_tern(make_tern, secrets, **cfg):
    d, cert, key, users = secrets
    config = {"tls_cert": str(cert), "tls_key": str(key), "auth_users": str(users),
              "auth_failure_delay": "0", "listen": "127.0.0.1:0 submission"}
    config.update(cfg)
    t = make_tern(config=config)
    assert passwd(t, "add", "alice@localhost", password="alice-pw-1").returncode == 0
    return t


def auth(t, user, password):
    """AUTH PLAIN under STARTTLS on the submission port: (reply code, the
    server's certificate, DER)."""
    c = Client(t.port_of("submission"))
    try:
        c.read_greeting()
        c.ehlo()
        c.expect("STARTTLS", r"^220")
        c.sock = tls_client_context().wrap_socket(c.sock)
        der = c.sock.getpeercert(binary_form=True)
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)))
        return r.code, der
    finally:
        c.close()


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def gone(pid, timeout=10):
    deadline = time.monotonic() + tf(timeout)
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid):
            return True
        time.sleep(0.02)
    return False


def test_new_user_after_reload_with_root_only_secrets(make_tern, secrets):
    t = root_only_tern(make_tern, secrets).start()
    parent, child = t.proc.pid, t.daemon_pid()
    assert parent != child
    assert uid_of(parent) == 0 and uid_of(child) == 65534  # nobody
    assert auth(t, "alice@localhost", "alice-pw-1")[0] == 235
    # the administrator adds carol, then reloads (systemctl reload: kill -HUP $MAINPID)
    assert passwd(t, "add", "carol@localhost", password="carol-pw-2").returncode == 0
    assert auth(t, "carol@localhost", "carol-pw-2")[0] == 535
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: applied: certificate and key, password file \(2 users\)")
    assert "Permission denied" not in t.run_log()
    assert auth(t, "carol@localhost", "carol-pw-2")[0] == 235
    # the files kept their modes
    for f in secrets[1:]:
        st = os.stat(f)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, f


def test_bad_key_at_reload_keeps_cert_applies_passwords(make_tern, secrets, tmp_path_factory):
    d, cert, key, users = secrets
    t = root_only_tern(make_tern, secrets).start()
    code, old_der = auth(t, "alice@localhost", "alice-pw-1")
    assert code == 235
    # a new certificate with a broken key, and a new user, in one reload
    other = tmp_path_factory.mktemp("other")
    new_cert, _ = make_cert(other, cn="new.test")
    cert.write_bytes(new_cert.read_bytes())
    key.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    assert passwd(t, "add", "carol@localhost", password="carol-pw-2").returncode == 0
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: tls_key %s: cannot load the private key.*; keeping the previous "
               r"certificate and key" % key)
    t.wait_log(r"reload: applied: password file \(2 users\), no sender_login table; failed, "
               r"kept the previous: certificate and key")
    code, der = auth(t, "carol@localhost", "carol-pw-2")
    assert code == 235
    assert der == old_der  # the old certificate is still served
    # a good key again: the new certificate applies at the next reload
    new_key = other / "cert.key"
    key.write_bytes(new_key.read_bytes())
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: applied: certificate and key, password file \(2 users\)")
    assert auth(t, "carol@localhost", "carol-pw-2")[1] != old_der


def test_parent_refuses_unsafe_key(make_tern, secrets):
    d, cert, key, users = secrets
    t = root_only_tern(make_tern, secrets).start()
    os.chmod(key, 0o644)  # readable by everyone: the parent refuses it
    t.signal(signal.SIGHUP)
    t.wait_log(r"reload: tls_key %s is readable by others" % key)
    t.wait_log(r"reload: applied: password file")
    os.chmod(key, 0o600)


def test_sighup_to_the_daemon_itself_with_a_new_key_path(make_tern, secrets):
    # `kill -HUP <daemon pid>` instead of the parent's: the parent reads the
    # configuration again before it answers, so the new path is allowed
    d, cert, key, users = secrets
    t = root_only_tern(make_tern, secrets).start()
    moved = d / "moved.key"
    moved.write_bytes(key.read_bytes())
    os.chmod(moved, 0o600)
    t.config["tls_key"] = str(moved)
    t.write_files()
    os.kill(t.daemon_pid(), signal.SIGHUP)
    t.wait_log(r"reload: applied: certificate and key, password file \(1 users\)")
    assert "not the file the configuration" not in t.run_log()


def test_sigterm_stops_both_and_removes_socket(make_tern, secrets, tmp_path_factory):
    # the socket's directory belongs to root (as /var/spool did): only the
    # parent can remove the socket; a missing directory is made at start
    run = tmp_path_factory.mktemp("run")
    os.chmod(run, 0o755)
    sock = run / "tern" / "tern.sock"
    t = root_only_tern(make_tern, secrets, local_socket=str(sock)).start()
    st = os.stat(run / "tern")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 65534
    assert sock.exists()
    os.chown(run / "tern", 0, 0)  # now the daemon cannot remove it itself
    parent, child = t.proc.pid, t.daemon_pid()
    t.stop()  # SIGTERM to the parent; asserts exit status 0
    assert gone(child) and gone(parent)
    assert not sock.exists()
    assert not (sock.parent / "tern-queue.sock").exists()  # the public queue socket beside it
    assert "removed the local socket %s" % sock in t.run_log()


def test_killed_daemon_makes_parent_fail(make_tern, secrets):
    t = root_only_tern(make_tern, secrets).start()
    child = t.daemon_pid()
    os.kill(child, signal.SIGKILL)
    rc = t.proc.wait(tf(10))
    t.proc = None
    assert rc != 0
    assert rc == 128 + signal.SIGKILL
    t.wait_log(r"privsep: the daemon \(pid %d\) was killed by signal 9" % child)
