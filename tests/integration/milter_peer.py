"""
milter_peer.py - a scriptable milter (protocol version 6, pure Python) for
tern's tests: it listens on 127.0.0.1 (port 0), records what the MTA sent
(every command in order, the macros per stage, the body bytes) and answers
as the test scripts it.

libmilter (and pymilter above it) allows one filter per process; this one
lets a test run several at once (a chain) and misbehave on purpose.

Use:
    p = MilterPeer(name="m1", eom=lambda sess: [addheader("X-A", "1"), ACCEPT]).start()
    ... tern config: milter = m1 inet:%d@127.0.0.1 % p.port
    p.sessions[-1].cmds        # [("O", ...), ("C", ...), ("H", ...), ...]
    p.stop()
Stage handlers (connect, helo, mail, rcpt, data, header, eoh, body, eom)
take the Session and the command's data and return a list of reply packets
(bytes); default: CONTINUE (eom: ACCEPT). mode="hang" at stage S never
answers S; mode="garbage" answers the option negotiation with junk.

Must not: touch anything but its own socket.
"""

import socket
import struct
import threading

# replies
ACCEPT = b"a"
CONTINUE = b"c"
REJECT = b"r"
TEMPFAIL = b"t"
DISCARD = b"d"
SKIP = b"s"
PROGRESS = b"p"

SMFIF_ALL = 0x1FF
SMFIP_SKIP = 0x400
SMFIP_NR_HDR = 0x80
SMFIP_HDR_LEADSPC = 0x100000

STAGES = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data",
          b"L": "header", b"N": "eoh", b"B": "body", b"E": "eom"}


def pkt(cmd, data=b""):
    if isinstance(cmd, str):
        cmd = cmd.encode()
    return struct.pack(">I", len(data) + 1) + cmd + data


def z(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def addheader(name, value):
    return pkt("h", z(name) + z(value))


def chgheader(index, name, value):
    return pkt("m", struct.pack(">I", index) + z(name) + z(value))


def insheader(index, name, value):
    return pkt("i", struct.pack(">I", index) + z(name) + z(value))


def replbody(data):
    return pkt("b", data)


def addrcpt(addr):
    return pkt("+", z(addr))


def addrcpt_par(addr, args):
    return pkt("2", z(addr) + z(args))


def delrcpt(addr):
    return pkt("-", z(addr))


def chgfrom(addr, args=None):
    return pkt("e", z(addr) + (z(args) if args else b""))


def quarantine(reason):
    return pkt("q", z(reason))


def replycode(text):
    return pkt("y", z(text))


def bare(r):
    """ACCEPT etc. as a packet"""
    return pkt(r)


class Session:
    def __init__(self):
        self.cmds = []          # (stage name or cmd letter, data)
        self.macros = {}        # macro stage letter -> dict
        self.headers = []       # (name, value)
        self.body = bytearray()
        self.body_chunks = []   # sizes
        self.closed = False

    def stages(self):
        return [c for c, _ in self.cmds]


class MilterPeer:
    def __init__(self, name="m", actions=SMFIF_ALL, protocol=0, symlist=None, mode=None,
                 hang_at=None, **handlers):
        self.name = name
        self.actions = actions
        self.protocol = protocol
        self.symlist = symlist or {}
        self.mode = mode
        self.hang_at = hang_at
        self.handlers = handlers
        self.sessions = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []

    def start(self):
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def spec(self, **opts):
        s = "%s inet:%d@127.0.0.1" % (self.name, self.port)
        for k, v in opts.items():
            s += " %s=%s" % (k, v)
        return s

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    def _serve(self, c):
        sess = Session()
        with self.lock:
            self.sessions.append(sess)
        try:
            while True:
                n = struct.unpack(">I", self._read(c, 4))[0]
                data = self._read(c, n)
                cmd, data = data[:1], data[1:]
                out = self._handle(sess, cmd, data)
                if out is None:
                    continue
                if out == "close":
                    break
                if out == "hang":
                    while not self.stopping:
                        d = c.recv(65536)
                        if not d:
                            break
                    break
                c.sendall(b"".join(out))
        except (EOFError, OSError):
            pass
        finally:
            sess.closed = True
            try:
                c.close()
            except OSError:
                pass

    def _handle(self, sess, cmd, data):
        if cmd == b"O":
            sess.cmds.append(("optneg", data))
            if self.mode == "garbage":
                return [b"\x00\x00\x00\x05zzzzz"]
            if self.mode == "huge":
                return [struct.pack(">I", 10 * 1024 * 1024) + b"O"]
            extra = b""
            for st, names in self.symlist.items():
                extra += struct.pack(">I", st) + z(names)
            return [pkt("O", struct.pack(">III", 6, self.actions, self.protocol) + extra)]
        if cmd == b"D":
            st = data[:1].decode()
            parts = data[1:].split(b"\0")
            kv = {}
            for i in range(0, len(parts) - 1, 2):
                kv[parts[i].decode()] = parts[i + 1].decode()
            sess.macros.setdefault(st, {}).update(kv)
            return None
        if cmd == b"A":
            sess.cmds.append(("abort", b""))
            return None
        if cmd in (b"Q", b"K"):
            sess.cmds.append(("quit", b""))
            return "close"
        stage = STAGES.get(cmd)
        if stage is None:
            sess.cmds.append(("?" + cmd.decode("latin-1"), data))
            return [pkt(CONTINUE)]
        sess.cmds.append((stage, data))
        if stage == "header":
            parts = data.split(b"\0")
            sess.headers.append((parts[0].decode("latin-1"), parts[1].decode("latin-1")))
        if stage == "body":
            sess.body += data
            sess.body_chunks.append(len(data))
        if self.hang_at == stage:
            return "hang"
        if stage == "header" and self.protocol & SMFIP_NR_HDR:
            return None
        h = self.handlers.get(stage)
        if h is not None:
            return h(sess, data)
        return [pkt(ACCEPT if stage == "eom" else CONTINUE)]
