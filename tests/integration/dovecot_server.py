"""
dovecot_server.py - a private, real Dovecot for the integration tests
(Debian's dovecot-core + dovecot-lmtpd; scripts/deps.sh installs them),
shared by test_lmtp.py (LMTP delivery) and test_dovecot_auth.py (tern's
AUTH against Dovecot's auth socket).

What it does: `dovecot -F -c CONFIG` with everything (base_dir,
state_dir, log, Maildirs, a passwd-file passdb and userdb) in a private
directory under /tmp, LMTP on 127.0.0.1 at a free port (also how start()
knows Dovecot is up), and, with auth_socket=True, an auth-client listener
`service auth { unix_listener auth-tern }` (mode 0666: tern runs as
nobody) at `Dovecot.auth_socket`; stop() and start() again keep the same
files, so a test can take Dovecot away and bring it back. Dovecot never
delivers mail as uid 0, so as root the mailboxes belong to the "mail" user
(a passwd-file userdb with that uid/gid); as another user, to that user.
Guarantees: nothing outside its directory; close() stops the process and
removes the directory; the system's Dovecot service plays no part.
Must not: be mistaken for a configuration to copy: it is minimal for tests
(no TLS, no failure delay).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tern_harness import free_port, tf

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
INSTALLED = os.path.exists(DOVECOT)
SKIP_REASON = "dovecot not installed (scripts/deps.sh installs dovecot-core dovecot-lmtpd)"


class Dovecot:
    """A private Dovecot with an LMTP listener on 127.0.0.1:port.

    users maps a user name to extra userdb fields ("" for none); passwords
    maps a user name to its password ("x" for any user not in it)."""

    def __init__(self, users, passwords=None, auth_socket=False, extra_conf=""):
        self.dir = Path(tempfile.mkdtemp(prefix="tern-dovecot-"))
        os.chmod(self.dir, 0o755)  # the mail user must reach its Maildirs, nobody the socket
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        self.log = self.dir / "dovecot.log"
        self.auth_socket = str(self.dir / "run" / "auth-tern") if auth_socket else None
        if os.getuid() == 0:
            pw = pwd.getpwnam("mail")  # Debian's base system has it; never uid 0
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            os.chown(self.mail, self.uid, self.gid)
            service_users = ""
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            me = pwd.getpwuid(self.uid).pw_name
            # without root: every service runs as us, nothing chroots
            service_users = ("default_internal_user = %s\ndefault_login_user = %s\n" % (me, me)
                             + NONROOT_SERVICES)
        passwords = passwords or {}
        lines = []
        for user, extra in users.items():
            lines.append("%s:{PLAIN}%s:%d:%d::%s::%s" % (user, passwords.get(user, "x"), self.uid,
                                                       self.gid, self.dir / "home" / user, extra))
        (self.dir / "users").write_text("\n".join(lines) + "\n")
        extra = extra_conf
        if auth_socket:
            extra += AUTH_CONF
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            self.conf = self.dir / "dovecot.conf"
            self.conf.write_text(DOVECOT_CONF % {
                "dir": self.dir, "port": self.port, "uid": self.uid, "gid": self.gid,
                "service_users": service_users, "extra": extra})
            if self.start():
                return
        why = self.log_text()
        shutil.rmtree(self.dir, ignore_errors=True)
        raise AssertionError("dovecot did not start:\n" + why)

    def start(self):
        # its own process group: stop() takes every Dovecot process away
        # (the master alone going leaves auth and others serving their
        # connections for a while), as `systemctl stop dovecot` does
        with open(self.dir / "stderr", "ab") as err:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        deadline = time.monotonic() + tf(10)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220 ") and self.auth_ready():
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def auth_ready(self):
        """The auth socket answers the handshake (or there is none)."""
        if not self.auth_socket:
            return True
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.auth_socket)
                s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
                data = b""
                while b"\nDONE\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return True
        except OSError:
            return False

    def pids(self, service):
        """The processes of one Dovecot service ("auth", "lmtp", ...) of this
        Dovecot (its process group), by their process title."""
        out = []
        if self.proc is None:
            return out
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.getpgid(int(d)) != self.proc.pid:
                    continue
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    title = f.read().split(b"\0")[0].split(b" ")[0]
            except OSError:
                continue
            if title == b"dovecot/" + service.encode():
                out.append(int(d))
        return out

    def log_text(self):
        out = ""
        for f in ("stderr", "dovecot.log"):
            p = self.dir / f
            if p.exists():
                out += p.read_text(errors="replace")
        return out

    def messages(self, user):
        d = self.mail / user / "new"
        return sorted(d.iterdir()) if d.is_dir() else []

    def stop(self):
        """Stop Dovecot, every process of it, and wait until they are gone."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + tf(10)
            while time.monotonic() < deadline:
                self.proc.poll()
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                continue
            break
        self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# without root nothing may chroot or give its sockets to the dovecot group
NONROOT_SERVICES = """
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    group =
  }
}
service dict {
  unix_listener dict {
    group =
  }
}
service dict-async {
  unix_listener dict-async {
    group =
  }
}
"""

# Dovecot's auth-client socket for tern (docs/operations.md shows the same
# for a real installation); no failure delay: tern has its own
AUTH_CONF = """
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
auth_debug = yes
service auth {
  unix_listener auth-tern {
    mode = 0666
  }
}
"""

DOVECOT_CONF = """# written by tests/integration/dovecot_server.py
base_dir = %(dir)s/run
state_dir = %(dir)s/state
log_path = %(dir)s/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = %(uid)d
first_valid_gid = %(gid)d
mail_location = maildir:%(dir)s/mail/%%u
mail_plugins = quota
plugin {
  quota = maildir:User quota
}
%(service_users)s
passdb {
  driver = passwd-file
  args = %(dir)s/users
}
userdb {
  driver = passwd-file
  args = %(dir)s/users
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(port)d
  }
}
%(extra)s
"""
