#!/usr/bin/python3
"""smtp_peer.py - a scripted SMTP/LMTP server for tests/unit/test_outbound.c.

Usage: smtp_peer.py MODES DIR

Listens on 127.0.0.1, port chosen by the kernel, and prints the port on
stdout (one line) once it accepts connections. MODES is a comma-separated
list of:
  accept    accept everything (the default behaviour)
  nopipe    do not advertise PIPELINING
  rcpt451   answer every RCPT with 451 4.3.0
  rcpt550   answer RCPT with 550 5.1.1 for local parts starting with "bad"
  dropdata  after 354, read a little of the content and drop the connection
  slow      wait 5 s before answering MAIL
  stall     after 354, stop reading (for 60 s)
  lmtp      speak LMTP (LHLO); after the final dot one reply per recipient:
            550 5.2.2 for local parts starting with "full", else 250
  size100   advertise SIZE 100
  utf8      advertise SMTPUTF8
Each message is written to DIR/msg-N.eml (content as received, after
dot-unstuffing) and DIR/msg-N.env (MAIL FROM, options, then one RCPT a
line); DIR/connections holds the number of connections accepted so far.
Runs until SIGTERM. (No DSN: aiosmtpd refuses its MAIL/RCPT parameters.)
"""

import asyncio
import os
import signal
import sys

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

MODES = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else {"accept"}
DIR = sys.argv[2] if len(sys.argv) > 2 else "."
state = {"conns": 0, "msgs": 0}


def bump_connections():
    state["conns"] += 1
    tmp = os.path.join(DIR, "connections.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % state["conns"])
    os.rename(tmp, os.path.join(DIR, "connections"))


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        out = []
        for r in responses:
            out.append(r)
        extra = []
        if "nopipe" not in MODES:
            extra.append("250-PIPELINING")
        extra.append("250-ENHANCEDSTATUSCODES")
        # keep the last line last ("250 HELP")
        return out[:-1] + extra + out[-1:]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "slow" in MODES:
            await asyncio.sleep(5)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "rcpt451" in MODES:
            return "451 4.3.0 <%s>: try again later" % address
        if "rcpt550" in MODES and address.startswith("bad"):
            return "550 5.1.1 <%s>: user unknown" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        state["msgs"] += 1
        base = os.path.join(DIR, "msg-%d" % state["msgs"])
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".env", "w") as f:
            f.write("MAIL %s %s\n" % (envelope.mail_from, " ".join(envelope.mail_options)))
            for r in envelope.rcpt_tos:
                f.write("RCPT %s\n" % r)
        os.rename(base + ".eml.tmp", base + ".eml")
        if "lmtp" in MODES:
            lines = []
            for r in envelope.rcpt_tos:
                if r.startswith("full"):
                    lines.append("550 5.2.2 <%s>: mailbox full" % r)
                else:
                    lines.append("250 2.0.0 <%s>: delivered" % r)
            return "\r\n".join(lines)
        return "250 2.0.0 Ok: queued as %d" % state["msgs"]


class PeerMixin:
    def connection_made(self, transport):
        bump_connections()
        super().connection_made(transport)

    async def smtp_DATA(self, arg):
        if "dropdata" in MODES and self.envelope.rcpt_tos:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.read(100)
            self.transport.abort()
            return
        if "stall" in MODES and self.envelope.rcpt_tos:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await asyncio.sleep(60)
            self.transport.abort()
            return
        return await super().smtp_DATA(arg)


class PeerSMTP(PeerMixin, SMTP):
    pass


class PeerLMTP(PeerMixin, LMTP):
    pass


async def main():
    loop = asyncio.get_running_loop()
    cls = PeerLMTP if "lmtp" in MODES else PeerSMTP
    handler = Handler()

    def factory():
        return cls(handler, hostname="peer.test", enable_SMTPUTF8="utf8" in MODES,
                   data_size_limit=100 if "size100" in MODES else None, loop=loop)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
