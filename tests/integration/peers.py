"""
peers.py - scripted SMTP peers and DNS servers for the hardening tests
(relay sinks, misbehaving downstream servers, broken DNS).

What it does:
  Sink       a threaded SMTP server on 127.0.0.1 (port chosen by the kernel)
             that records every command line it reads and every message it
             takes, with the Message-ID and the queue ID from tern's
             Received header. With lenient=True it ends DATA at ANY of the
             2023 "SMTP smuggling" terminators (\\n.\\n, \\r.\\r, \\r\\n.\\r ...),
             as a vulnerable receiver would, and reads whatever follows as
             new commands: a smuggled second message would show as a second
             MAIL FROM. With a behaviour it misbehaves instead (see BEHAVIOURS).
  BadDNS     a UDP "DNS server" that never answers, or answers with junk.
Guarantees: every thread is a daemon and stops at close(); nothing is
written outside memory; each recorded item is appended under a lock.
Must not: interpret more of SMTP than a test needs; it is a peer, not a
reference implementation.
"""

import os
import random
import re
import select
import socket
import threading
import time

MSGID_RE = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.I | re.M)
QID_RECEIVED_RE = re.compile(rb"\(tern\) with [A-Z0-9]+ id ([0-9A-Z]{16})")

# the terminators a lenient (vulnerable) receiver accepts, longest first at
# any one position; the proper one is CRLF.CRLF (RFC 5321 §4.1.1.4)
LENIENT_ENDS = [b"\r\n.\r\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r",
                b"\n.\n", b"\r.\r", b"\n.\r", b"\r.\n"]
STRICT_ENDS = [b"\r\n.\r\n"]

BEHAVIOURS = {
    "ok": "a normal server",
    "stall_after_dot": "reads the whole content, never answers the final dot",
    "stall_mid_data": "after 354, never reads again (the client's writes block)",
    "reset_mid_data": "after 354, reads a little and resets the connection (RST)",
    "garbage_greeting": "greets with random bytes",
    "garbage_after_ehlo": "answers EHLO with random bytes",
    "garbage_mid_data": "answers the final dot with random bytes",
    "endless_multiline": "answers EHLO with 250-x lines forever",
    "silent": "accepts the connection and never says a word",
}


class Sink:
    """A recording SMTP peer. Messages: dicts with from, rcpts, data, msgid, qid."""

    def __init__(self, behaviour="ok", lenient=False, chunking=False, name="sink.test",
                 host="127.0.0.1", record_commands=True, rcvbuf=None):
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour
        self.lenient = lenient
        self.chunking = chunking
        self.name = name
        self.record_commands = record_commands
        self.lock = threading.Lock()
        self.messages = []
        self.commands = []  # raw command lines (bytes, without line end)
        self.connections = 0
        self.events = []  # (monotonic time, text) of notable moments
        self.stopping = False
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:  # inherited by accepted sockets: a stalled reader fills up soon
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.lsock.bind((host, 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.threads = []
        self.socks = set()
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    @property
    def spec(self):
        return "[127.0.0.1]:%d" % self.port

    def close(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.accepter.join(2)

    def msgids(self):
        with self.lock:
            return [m["msgid"] for m in self.messages]

    def event(self, text):
        with self.lock:
            self.events.append((time.monotonic(), text))

    # ---- server ----
    def _accept(self):
        while not self.stopping:
            r, _, _ = select.select([self.lsock], [], [], 0.1)
            if not r:
                continue
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.socks.add(s)
            th = threading.Thread(target=self._serve, args=(s,), daemon=True)
            th.start()

    def _serve(self, s):
        conn = _Conn(self, s)
        try:
            conn.run()
        except (OSError, EOFError):
            pass
        finally:
            with self.lock:
                self.socks.discard(s)
            try:
                s.close()
            except OSError:
                pass


class _Conn:
    def __init__(self, sink, sock):
        self.sink = sink
        self.sock = sock
        self.buf = b""
        self.sock.settimeout(60)

    def send(self, data):
        self.sock.sendall(data)

    def recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        """A command line; a lenient reader: LF ends it, CR before it dropped."""
        while b"\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise EOFError
            self.recv()
        ln, _, self.buf = self.buf.partition(b"\n")
        if ln.endswith(b"\r"):
            ln = ln[:-1]
        if self.sink.record_commands:
            with self.sink.lock:
                self.sink.commands.append(ln)
        return ln

    def data(self):
        """Content up to the first terminator (lenient or not); the rest stays
        in the buffer and is read as commands."""
        ends = LENIENT_ENDS if self.sink.lenient else STRICT_ENDS
        # the content starts at a line start: a virtual CRLF before it
        self.buf = b"\r\n" + self.buf
        while True:
            best = None
            for e in ends:
                i = self.buf.find(e)
                if i >= 0 and (best is None or i < best[0] or (i == best[0] and len(e) > len(best[1]))):
                    best = (i, e)
            if best is not None:
                i, e = best
                content = self.buf[2:i] if i >= 2 else b""
                self.buf = self.buf[i + len(e):]
                if e != b"\r\n.\r\n":
                    self.sink.event("lenient end of data %r" % e)
                # unstuff (RFC 5321 §4.5.2)
                content = re.sub(rb"(?m)^\.\.", b".", content)
                return content + b"\r\n" if content and not content.endswith(b"\n") else content
            if len(self.buf) > 64 << 20:
                raise EOFError
            self.recv()

    def bdat(self, n):
        while len(self.buf) < n:
            self.recv()
        chunk, self.buf = self.buf[:n], self.buf[n:]
        return chunk

    def store(self, mail_from, rcpts, content):
        m = MSGID_RE.search(content)
        q = QID_RECEIVED_RE.search(content)
        with self.sink.lock:
            self.sink.messages.append({
                "from": mail_from, "rcpts": list(rcpts), "data": content,
                "msgid": m.group(1).decode("utf-8", "replace") if m else None,
                "qid": q.group(1).decode() if q else None,
            })

    def run(self):
        b = self.sink.behaviour
        if b == "silent":
            while not self.sink.stopping:
                time.sleep(0.2)
            return
        if b == "garbage_greeting":
            self.send(os.urandom(300) + b"\r\n")
            time.sleep(5)
            return
        self.send(b"220 %s ESMTP sink\r\n" % self.sink.name.encode())
        mail_from, rcpts, bdat_buf = None, [], b""
        while True:
            ln = self.line()
            verb = ln[:4].upper()
            if verb in (b"EHLO", b"HELO", b"LHLO"):
                if b == "garbage_after_ehlo":
                    self.send(os.urandom(500))
                    time.sleep(5)
                    return
                if b == "endless_multiline":
                    t_end = time.monotonic() + 30
                    self.sock.settimeout(5)
                    while time.monotonic() < t_end and not self.sink.stopping:
                        self.send(b"250-x\r\n" * 200)
                    return
                ext = [b"PIPELINING", b"8BITMIME", b"SIZE 0", b"ENHANCEDSTATUSCODES"]
                if self.sink.chunking:
                    ext += [b"CHUNKING", b"BINARYMIME"]
                out = b"250-" + self.sink.name.encode() + b"\r\n"
                out += b"".join(b"250-" + e + b"\r\n" for e in ext[:-1])
                out += b"250 " + ext[-1] + b"\r\n"
                self.send(out)
            elif verb == b"MAIL":
                mail_from, rcpts, bdat_buf = ln, [], b""
                self.send(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                rcpts.append(ln)
                self.send(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                if not rcpts:
                    self.send(b"503 5.5.1 no recipients\r\n")
                    continue
                self.send(b"354 go ahead\r\n")
                if b == "stall_mid_data":
                    self.sink.event("stalled mid data")
                    time.sleep(60)
                    return
                if b == "reset_mid_data":
                    while len(self.buf) < 100:
                        self.recv()
                    self.sink.event("reset mid data")
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.sock.close()
                    return
                content = self.data()
                if b == "stall_after_dot":
                    self.sink.event("stalled after dot")
                    time.sleep(60)
                    return
                if b == "garbage_mid_data":
                    self.send(os.urandom(400) + b"\r\n")
                    time.sleep(5)
                    return
                self.store(mail_from, rcpts, content)
                self.send(b"250 2.0.0 ok: stored\r\n")
                mail_from, rcpts = None, []
            elif verb == b"BDAT":
                parts = ln.split()
                try:
                    n = int(parts[1])
                except (IndexError, ValueError):
                    self.send(b"501 5.5.4 bad BDAT\r\n")
                    continue
                bdat_buf += self.bdat(n)
                last = len(parts) > 2 and parts[2].upper() == b"LAST"
                if last:
                    self.store(mail_from, rcpts, bdat_buf)
                    mail_from, rcpts, bdat_buf = None, [], b""
                    self.send(b"250 2.0.0 ok: stored\r\n")
                else:
                    self.send(b"250 2.0.0 chunk ok\r\n")
            elif verb == b"RSET":
                mail_from, rcpts, bdat_buf = None, [], b""
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == b"NOOP":
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                self.send(b"221 2.0.0 bye\r\n")
                return
            else:
                self.send(b"500 5.5.2 what?\r\n")


class BadDNS:
    """A UDP server on 127.0.0.1 that answers no query properly.
    mode: timeout (never answers), random (random bytes), junk (the query's
    ID and flags of a response, then random bytes), by_name (the first label
    of the query name decides: timeout*, random*, junk*)."""

    def __init__(self, mode="by_name"):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def spec(self):
        return "127.0.0.1@%d" % self.port

    @staticmethod
    def first_label(pkt):
        if len(pkt) < 13:
            return b""
        n = pkt[12]
        return pkt[13:13 + n].lower()

    def _run(self):
        rnd = random.Random(1234)
        while not self.stopping:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                pkt, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.queries += 1
            mode = self.mode
            if mode == "by_name":
                lab = self.first_label(pkt)
                mode = ("random" if lab.startswith(b"random") else
                        "junk" if lab.startswith(b"junk") else "timeout")
            if mode == "timeout":
                continue
            if mode == "random":
                out = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 600)))
            else:
                # a response header with the right ID, counts that lie, junk after
                out = pkt[:2] + b"\x81\x80" + b"\x00\x01\x00\x05\x00\x00\x00\x00"
                out += bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 300)))
            try:
                self.sock.sendto(out, addr)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
