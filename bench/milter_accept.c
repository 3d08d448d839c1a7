/*
 * milter_accept.c - the benchmark's trivial milter: it answers every
 * stage of every message "continue" and so accepts all mail, as fast as
 * the milter protocol allows, so that `make bench` measures what an MTA
 * pays for speaking the protocol, not what a filter costs.
 *
 * The protocol is Sendmail's milter protocol version 6 (libmilter's
 * docs, Postfix's src/milter/milter8.c): packets of a 4-octet length in
 * network order (the command octet included), one command octet, data.
 * The option negotiation asks for every stage (no SMFIP_NO* or SMFIP_NR_*
 * flag), so the MTA sends the connect, HELO, MAIL, each RCPT, DATA, each
 * header, the end of headers, the body in chunks and the end of message,
 * and waits for a reply to each: the full cost of a milter that looks at
 * everything. Macros (SMFIC_MACRO) and SMFIC_ABORT need no reply;
 * SMFIC_QUIT closes; SMFIC_QUIT_NC keeps the connection open for the
 * next connect the MTA sends on it.
 *
 * One thread per MTA connection (the MTAs open one per SMTP session),
 * blocking reads through a 64 KiB buffer.
 * Guarantees: never changes a message; closes a connection that sends a
 * packet over 1 MiB or one it does not know.
 * Must not: be used outside the benchmark (no access control: it listens
 * on 127.0.0.1 only).
 *
 * Usage: milter_accept [PORT]   (0 or none: a free port)
 * Output: "port=N" on stdout once it listens, then nothing; runs until
 * killed. Built by bench/bench.py with: gcc -O2 -pthread -o ... milter_accept.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PKT_MAX (1024 * 1024)

struct conn {
	int fd;
	unsigned char buf[65536];
	size_t off, len;
};

/* n octets into out (NULL: skip them); 0, or -1 at EOF/error */
static int
get(struct conn *c, unsigned char *out, size_t n)
{
	while (n > 0) {
		if (c->off == c->len) {
			ssize_t r = read(c->fd, c->buf, sizeof c->buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			c->off = 0;
			c->len = (size_t)r;
		}
		size_t k = c->len - c->off;
		if (k > n)
			k = n;
		if (out) {
			memcpy(out, c->buf + c->off, k);
			out += k;
		}
		c->off += k;
		n -= k;
	}
	return 0;
}

static int
put(int fd, char cmd, const void *data, uint32_t dlen)
{
	unsigned char p[32];
	uint32_t len = htonl(dlen + 1);
	memcpy(p, &len, 4);
	p[4] = (unsigned char)cmd;
	if (dlen)
		memcpy(p + 5, data, dlen);
	size_t n = 5 + dlen, off = 0;
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static void *
serve(void *arg)
{
	struct conn *c = arg;
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (;;) {
		unsigned char hdr[5];
		if (get(c, hdr, 5) < 0)
			break;
		uint32_t len;
		memcpy(&len, hdr, 4);
		len = ntohl(len);
		if (len < 1 || len > PKT_MAX)
			break;
		char cmd = (char)hdr[4];
		uint32_t dlen = len - 1;
		int rc = 0;
		switch (cmd) {
		case 'O': { /* SMFIC_OPTNEG: version, actions, protocol */
			unsigned char d[12];
			if (dlen < 12 || get(c, d, 12) < 0 || get(c, NULL, dlen - 12) < 0) {
				rc = -1;
				break;
			}
			/* version 6, no actions, no stage skipped, every reply */
			uint32_t v[3] = {htonl(6), htonl(0), htonl(0)};
			rc = put(c->fd, 'O', v, sizeof v);
			break;
		}
		case 'D': /* SMFIC_MACRO */
		case 'A': /* SMFIC_ABORT */
			rc = get(c, NULL, dlen);
			break;
		case 'Q': /* SMFIC_QUIT */
			rc = -1;
			break;
		case 'K': /* SMFIC_QUIT_NC: a new connect follows on this connection */
			rc = get(c, NULL, dlen);
			break;
		case 'C': case 'H': case 'M': case 'R': case 'T': case 'L': case 'N':
		case 'B': case 'E': case 'U':
			rc = get(c, NULL, dlen);
			if (rc == 0)
				rc = put(c->fd, 'c', NULL, 0); /* SMFIR_CONTINUE */
			break;
		default:
			rc = -1;
			break;
		}
		if (rc < 0)
			break;
	}
	close(c->fd);
	free(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0;
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	(void)setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
		perror("milter_accept: listen");
		return 1;
	}
	socklen_t al = sizeof a;
	getsockname(ls, (struct sockaddr *)&a, &al);
	printf("port=%d\n", ntohs(a.sin_port));
	fflush(stdout);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (;;) {
		int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("milter_accept: accept");
			return 1;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		pthread_t t;
		if (pthread_create(&t, &at, serve, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
