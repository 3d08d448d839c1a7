/*
 * sendmail.c - the sendmail-compatible command (see sendmail.h and
 * docs/sendmail.md).
 *
 * Modes: -bm (the default) reads a message on stdin and submits it; -bs
 * speaks SMTP on stdin/stdout, relayed to the daemon as is; -bp lists the
 * queue (the queue tool's mailq); -bv and -bt print how each address
 * would be routed (cli/address.h), sending nothing; -bi (and the name
 * "newaliases") and -q succeed doing nothing, with a note on stderr: tern
 * reads its tables as text and runs its queue itself, but scripts call
 * them. --version and --help print to stdout. Options understood: -t (recipients from
 * To, Cc and Bcc; Bcc removed), -i / -oi (a lone "." does not end the
 * input), -f / -r sender, -F full name, -N notify, -R ret, -V envid, -C
 * config; other classic options (-o..., -v, -B, -L, -m, -U, -h, -X, -O)
 * are accepted and ignored.
 *
 * Guarantees: exit 0 only after the daemon's 250 to the end of DATA (the
 * message is durable); all recipients or none: if the daemon refuses one,
 * nothing is sent (so a retry after a failure never duplicates); the
 * input is bounded by message_size_limit; LF line ends become CRLF, dots
 * are stuffed (RFC 5321 §4.5.2). Every failure says why on stderr.
 * Must not: need privileges, write the spool, or trust its own idea of
 * who the user is (the daemon takes the uid from the kernel).
 */
#include "sendmail/sendmail.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/address.h"
#include "cli/queue.h"
#include "common/config.h"
#include "lib/buf.h"
#include "lib/version.h"
#include "lib/xalloc.h"

#define REPLY_TIMEOUT_MS (10 * 60 * 1000) /* RFC 5321 §4.5.3.2.6: 10 min for the final reply */
#define MAX_RCPTS 10000
#define MAX_REPLY 65536

typedef struct strv {
	char **v;
	size_t n;
} strv_t;

static void
strv_add(strv_t *s, const char *p, size_t n)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
	s->v[s->n++] = xstrndup(p, n);
}

static void
strv_free(strv_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		xfree(s->v[i]);
	xfree(s->v);
	s->v = NULL;
	s->n = 0;
}

struct opts {
	const char *config;
	char mode;          /* 'm' message, 's' SMTP, 'p' queue, 'v' verify, 'i' -bi, 'q' -q */
	bool t;             /* recipients from the header */
	bool i;             /* dots are not special */
	const char *from;
	const char *fullname;
	const char *notify;
	const char *ret;
	const char *envid;
};

static int
usage(const char *why)
{
	if (why)
		fprintf(stderr, "sendmail: %s\n", why);
	fprintf(why ? stderr : stdout,
	    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-C config] [-bm|-bs|-bp] [recipient ...]\n"
	    "       sendmail -bv|-bt ADDRESS...   how each address would be routed (nothing is sent)\n"
	    "       sendmail -bi, newaliases, sendmail -q   accepted; nothing to do in tern\n"
	    "       sendmail --version | --help\n"
	    "The message is read on stdin and handed to the tern daemon (docs/sendmail.md).\n");
	return why ? EX_USAGE : 0;
}

/* -bi, newaliases, -q: scripts call them after editing aliases or to push
 * the queue; say what tern does instead and succeed */
static int
no_op(const char *what, const char *note)
{
	fprintf(stderr, "%s: nothing to do: %s\n", what, note);
	return 0;
}

#define NOTE_ALIASES "tern reads the aliases table as text (systemctl reload tern applies changes)"


/* ---- the message ---- */

/* Read stdin: LF and CRLF line ends become CRLF; without -i a line with a
 * single "." ends the input (sendmail's default). */
static int
read_message(const struct opts *o, uint64_t limit, buf_t *msg)
{
	buf_t line = BUF_INIT;
	char chunk[65536];
	bool eof = false;
	size_t have = 0, pos = 0;
	for (;;) {
		if (pos == have) {
			if (eof)
				break;
			ssize_t r = read(0, chunk, sizeof chunk);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "sendmail: reading the message: %s\n", strerror(errno));
				buf_free(&line);
				return EX_IOERR;
			}
			if (r == 0) {
				eof = true;
				if (line.len == 0)
					break;
			}
			have = (size_t)r;
			pos = 0;
		}
		bool end_line = false;
		while (pos < have) {
			char ch = chunk[pos++];
			if (ch == '\n') {
				end_line = true;
				break;
			}
			buf_putc(&line, ch);
		}
		if (!end_line && !eof)
			continue;
		/* a complete line (or the last, unterminated one) */
		size_t n = line.len;
		if (n > 0 && line.data[n - 1] == '\r')
			n--;
		if (!o->i && n == 1 && line.data[0] == '.')
			break;
		buf_append(msg, line.data ? line.data : "", n);
		buf_puts(msg, "\r\n");
		buf_reset(&line);
		if (msg->len > limit) {
			fprintf(stderr, "sendmail: message larger than the limit of %llu octets\n",
			    (unsigned long long)limit);
			buf_free(&line);
			return EX_DATAERR;
		}
		if (eof && pos == have)
			break;
	}
	buf_free(&line);
	return 0;
}

/* the end of the header section: offset of the blank line, or len */
static size_t
header_end(const buf_t *m)
{
	size_t pos = 0;
	while (pos < m->len) {
		const char *eol = memmem(m->data + pos, m->len - pos, "\r\n", 2);
		if (!eol)
			return m->len;
		if (eol == m->data + pos)
			return pos;
		pos = (size_t)(eol - m->data) + 2;
	}
	return m->len;
}

static bool
field_is(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && strncasecmp(line, name, k) == 0 && line[k] == ':';
}

/*
 * Addresses of an RFC 5322 §3.4 address-list: "a@b", "Name <a@b>",
 * "group: a@b, c@d;", with quoted strings and (comments). Bounded by the
 * text; what does not look like an address is skipped.
 */
static void
parse_address_list(const char *s, size_t n, strv_t *out)
{
	buf_t cur = BUF_INIT;   /* the current item without comments */
	buf_t angle = BUF_INIT; /* inside <...> */
	bool in_angle = false, have_angle = false;
	int depth = 0; /* comment nesting */
	for (size_t i = 0; i <= n; i++) {
		char ch = i < n ? s[i] : ',';
		if (depth > 0) {
			if (ch == '\\' && i + 1 < n)
				i++;
			else if (ch == '(')
				depth++;
			else if (ch == ')')
				depth--;
			continue;
		}
		if (ch == '"') {
			/* a quoted string: kept (it may be a quoted local part) */
			buf_t *b = in_angle ? &angle : &cur;
			buf_putc(b, ch);
			for (i++; i < n && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < n)
					buf_putc(b, s[i++]);
				buf_putc(b, s[i]);
			}
			buf_putc(b, '"');
			continue;
		}
		if (ch == '(') {
			depth = 1;
			continue;
		}
		if (in_angle) {
			if (ch == '>')
				in_angle = false;
			else
				buf_putc(&angle, ch);
			continue;
		}
		if (ch == '<') {
			in_angle = true;
			have_angle = true;
			buf_reset(&angle);
			continue;
		}
		if (ch == ':' && !have_angle && !memchr(cur.data ? cur.data : "", '@', cur.len)) {
			buf_reset(&cur); /* a group's display name */
			continue;
		}
		if (ch == ',' || ch == ';') {
			const char *a = have_angle ? buf_cstr(&angle) : buf_cstr(&cur);
			/* drop a source route "@a,@b:" and white space */
			const char *colon = have_angle && a[0] == '@' ? strchr(a, ':') : NULL;
			if (colon)
				a = colon + 1;
			size_t b = strspn(a, " \t\r\n"), e = strlen(a);
			while (e > b && strchr(" \t\r\n", a[e - 1]))
				e--;
			if (e > b && memchr(a + b, '@', e - b) && !memchr(a + b, ' ', e - b))
				strv_add(out, a + b, e - b);
			else if (e > b && !memchr(a + b, ' ', e - b) && !memchr(a + b, '@', e - b))
				strv_add(out, a + b, e - b); /* a local name: "alice" */
			buf_reset(&cur);
			buf_reset(&angle);
			have_angle = false;
			continue;
		}
		buf_putc(&cur, ch);
	}
	buf_free(&cur);
	buf_free(&angle);
}

/* -t: recipients from To, Cc and Bcc; Bcc fields are removed from msg */
static void
take_header_recipients(buf_t *msg, strv_t *rcpts)
{
	size_t hend = header_end(msg);
	buf_t out = BUF_INIT;
	size_t pos = 0;
	while (pos < hend) {
		/* one field with its continuation lines */
		size_t start = pos;
		const char *eol = memmem(msg->data + pos, hend - pos, "\r\n", 2);
		pos = eol ? (size_t)(eol - msg->data) + 2 : hend;
		while (pos < hend && (msg->data[pos] == ' ' || msg->data[pos] == '\t')) {
			eol = memmem(msg->data + pos, hend - pos, "\r\n", 2);
			pos = eol ? (size_t)(eol - msg->data) + 2 : hend;
		}
		const char *f = msg->data + start;
		size_t fl = pos - start;
		bool bcc = field_is(f, fl, "Bcc");
		if (field_is(f, fl, "To") || field_is(f, fl, "Cc") || bcc) {
			const char *colon = memchr(f, ':', fl);
			parse_address_list(colon + 1, fl - (size_t)(colon + 1 - f), rcpts);
		}
		if (!bcc)
			buf_append(&out, f, fl);
	}
	buf_append(&out, msg->data + hend, msg->len - hend);
	buf_free(msg);
	*msg = out;
}

static bool
has_field(const buf_t *msg, const char *name)
{
	size_t hend = header_end(msg), pos = 0;
	while (pos < hend) {
		const char *eol = memmem(msg->data + pos, hend - pos, "\r\n", 2);
		size_t next = eol ? (size_t)(eol - msg->data) + 2 : hend;
		if (field_is(msg->data + pos, next - pos, name))
			return true;
		pos = next;
	}
	return false;
}

/* ---- the SMTP dialogue ---- */

typedef struct smtp {
	int fd;
	buf_t in;
	char reply[1024]; /* the last reply's last line */
	int code;
} smtp_t;

static int
sock_write(smtp_t *s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = send(s->fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The code of a reply line: three digits, then a space, "-" or the end
 * (RFC 5321 §4.2); 0 for anything else. */
static int
reply_code(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	if (s[3] != '\0' && s[3] != ' ' && s[3] != '-')
		return 0;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Read one reply; its code, or -1 when the connection broke. */
static int
sock_reply(smtp_t *s)
{
	for (;;) {
		char *eol;
		while (s->in.len > 0 && (eol = memmem(s->in.data, s->in.len, "\r\n", 2)) != NULL) {
			size_t ll = (size_t)(eol - s->in.data);
			bool last = ll < 4 || s->in.data[3] != '-';
			if (last) {
				snprintf(s->reply, sizeof s->reply, "%.*s", (int)ll, s->in.data);
				s->code = reply_code(s->reply);
			}
			buf_consume(&s->in, ll + 2);
			if (last)
				return s->code >= 200 && s->code <= 599 ? s->code : -1;
		}
		if (s->in.len > MAX_REPLY)
			return -1;
		struct pollfd p = {s->fd, POLLIN, 0};
		int pr = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			snprintf(s->reply, sizeof s->reply, "timeout waiting for the mail system");
			return -1;
		}
		char chunk[4096];
		ssize_t r = recv(s->fd, chunk, sizeof chunk, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(s->reply, sizeof s->reply, "the mail system closed the connection");
			return -1;
		}
		buf_append(&s->in, chunk, (size_t)r);
	}
}

static int
cmd(smtp_t *s, const char *line)
{
	if (sock_write(s, line, strlen(line)) < 0 || sock_write(s, "\r\n", 2) < 0) {
		snprintf(s->reply, sizeof s->reply, "writing to the mail system: %s", strerror(errno));
		return -1;
	}
	return sock_reply(s);
}

/* exit status for a refusal */
static int
refusal(int code)
{
	return code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL;
}

static int
connect_socket(const char *path)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	size_t len = strlen(path);
	if (len >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* RFC 3461 §4: xtext */
static void
xtext(buf_t *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < '!' || ch > '~' || ch == '+' || ch == '=')
			buf_printf(b, "+%02X", ch);
		else
			buf_putc(b, (char)ch);
	}
}

static bool
eight_bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static bool
word_ok(const char *s)
{
	/* a NOTIFY list or RET value: letters and commas only */
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == ','))
			return false;
	return true;
}

static bool
address_ok(const char *a)
{
	size_t n = strlen(a);
	if (n == 0 || n > 254)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] <= ' ' || a[i] == '<' || a[i] == '>' || a[i] == 0x7f)
			return false;
	return true;
}

static int
submit(const struct opts *o, const char *sock, const char *me, strv_t *rcpts, const buf_t *msg)
{
	smtp_t s = {.fd = -1};
	int rc = EX_TEMPFAIL;
	s.fd = connect_socket(sock);
	if (s.fd < 0) {
		fprintf(stderr, "sendmail: cannot reach the mail system at %s: %s (is tern running?); "
		    "the message was not sent\n", sock, strerror(errno));
		return EX_TEMPFAIL;
	}
	buf_t b = BUF_INIT;
	int code = sock_reply(&s);
	if (code != 220) {
		fprintf(stderr, "sendmail: the mail system refused the connection: %s\n", s.reply);
		rc = code < 0 ? EX_TEMPFAIL : refusal(code);
		goto out;
	}
	if ((code = cmd(&s, "EHLO localhost")) != 250) {
		fprintf(stderr, "sendmail: EHLO: %s\n", s.reply);
		rc = code < 0 ? EX_TEMPFAIL : refusal(code);
		goto out;
	}
	const char *sender = o->from ? o->from : me;
	bool utf8 = eight_bit(sender, strlen(sender));
	for (size_t i = 0; i < rcpts->n; i++)
		utf8 = utf8 || eight_bit(rcpts->v[i], strlen(rcpts->v[i]));
	buf_printf(&b, "MAIL FROM:<%s> SIZE=%zu", sender, msg->len);
	if (eight_bit(msg->data, msg->len))
		buf_puts(&b, " BODY=8BITMIME");
	if (utf8)
		buf_puts(&b, " SMTPUTF8");
	if (o->ret)
		buf_printf(&b, " RET=%s", o->ret);
	if (o->envid) {
		buf_puts(&b, " ENVID=");
		xtext(&b, o->envid);
	}
	if ((code = cmd(&s, buf_cstr(&b))) != 250) {
		fprintf(stderr, "sendmail: sender <%s>: %s\n", sender, s.reply);
		rc = code < 0 ? EX_TEMPFAIL : refusal(code);
		goto out;
	}
	int worst = 0;
	for (size_t i = 0; i < rcpts->n; i++) {
		buf_reset(&b);
		buf_printf(&b, "RCPT TO:<%s>", rcpts->v[i]);
		if (o->notify)
			buf_printf(&b, " NOTIFY=%s", o->notify);
		code = cmd(&s, buf_cstr(&b));
		if (code < 0) {
			fprintf(stderr, "sendmail: %s\n", s.reply);
			rc = EX_TEMPFAIL;
			goto out;
		}
		if (code / 100 != 2) {
			fprintf(stderr, "sendmail: recipient <%s>: %s\n", rcpts->v[i], s.reply);
			if (code > worst)
				worst = code;
		}
	}
	if (worst) {
		/* all or nothing: a retry must not send twice to the others */
		cmd(&s, "RSET");
		fprintf(stderr, "sendmail: the message was not sent\n");
		rc = refusal(worst);
		goto out;
	}
	if ((code = cmd(&s, "DATA")) != 354) {
		fprintf(stderr, "sendmail: DATA: %s\n", s.reply);
		rc = code < 0 ? EX_TEMPFAIL : refusal(code);
		goto out;
	}
	/* RFC 5321 §4.5.2: a leading "." is doubled */
	buf_reset(&b);
	buf_reserve(&b, msg->len + msg->len / 32 + 8);
	size_t pos = 0;
	while (pos < msg->len) {
		const char *eol = memmem(msg->data + pos, msg->len - pos, "\r\n", 2);
		size_t next = eol ? (size_t)(eol - msg->data) + 2 : msg->len;
		if (msg->data[pos] == '.')
			buf_putc(&b, '.');
		buf_append(&b, msg->data + pos, next - pos);
		pos = next;
	}
	buf_puts(&b, ".\r\n");
	if (sock_write(&s, b.data, b.len) < 0) {
		fprintf(stderr, "sendmail: writing the message: %s; it was not sent\n", strerror(errno));
		rc = EX_TEMPFAIL;
		goto out;
	}
	code = sock_reply(&s);
	if (code != 250) {
		fprintf(stderr, "sendmail: the message was not accepted: %s\n", s.reply);
		rc = code < 0 ? EX_TEMPFAIL : refusal(code);
		goto out;
	}
	rc = 0;
	cmd(&s, "QUIT");
out:
	buf_free(&b);
	buf_free(&s.in);
	close(s.fd);
	return rc;
}

/* -bs: SMTP on stdin/stdout, relayed byte for byte */
static int
relay_smtp(const char *sock)
{
	int fd = connect_socket(sock);
	if (fd < 0) {
		fprintf(stderr, "sendmail: cannot reach the mail system at %s: %s (is tern running?)\n", sock,
		    strerror(errno));
		printf("421 4.3.2 mail system unavailable\r\n");
		fflush(stdout);
		return EX_TEMPFAIL;
	}
	bool in_open = true;
	char buf[65536];
	for (;;) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {0, POLLIN, 0}};
		int pr = poll(p, in_open ? 2 : 1, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			ssize_t r = read(fd, buf, sizeof buf);
			if (r <= 0)
				break; /* the daemon ended the session */
			if (write(1, buf, (size_t)r) != r)
				break;
		}
		if (in_open && p[1].revents) {
			ssize_t r = read(0, buf, sizeof buf);
			if (r <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
				continue;
			}
			if (send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r)
				break;
		}
	}
	close(fd);
	return 0;
}

/* "Full Name" as an RFC 5322 quoted-string */
static void
quoted_phrase(buf_t *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '\r' || *s == '\n')
			continue;
		if (*s == '"' || *s == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

/* the command line into o; returns -1 to go on, else the exit code */
static int
parse_opts(struct opts *o, int argc, char **argv)
{
	int ch;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("sendmail (tern %s)\n", TERN_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0)
			return usage(NULL);
	}
	optind = 0; /* main() may have run getopt already */
	opterr = 0;
	while ((ch = getopt(argc, argv, "+B:b:C:F:f:h:iL:mN:nO:o:p:q::R:r:tUV:vX:")) != -1) {
		switch (ch) {
		case 'b':
			if (strcmp(optarg, "s") == 0 || strcmp(optarg, "p") == 0 || strcmp(optarg, "m") == 0 ||
			    strcmp(optarg, "v") == 0 || strcmp(optarg, "i") == 0)
				o->mode = optarg[0];
			else if (strcmp(optarg, "t") == 0)
				o->mode = 'v';
			else
				return usage("only -bm, -bs, -bp, -bv, -bt and -bi are supported");
			break;
		case 'C': o->config = optarg; break;
		case 'F': o->fullname = optarg; break;
		case 'f':
		case 'r': o->from = optarg; break;
		case 'i': o->i = true; break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o->i = true;
			break; /* -oem, -odb ... : nothing to do */
		case 't': o->t = true; break;
		case 'N': o->notify = optarg; break;
		case 'R': o->ret = optarg; break;
		case 'V': o->envid = optarg; break;
		case 'q': o->mode = 'q'; break;
		case '?': return usage("unknown option");
		default: break; /* accepted and ignored */
		}
	}
	return -1;
}

/* the modes that submit nothing (-bp, -bi, -q, -bv/-bt); -1 for the others */
static int
run_query_mode(const struct opts *o, int argc, char **argv)
{
	if (o->mode == 'p') {
		char *av[] = {(char *)"mailq", NULL};
		return cli_mailq(o->config, 1, av);
	}
	if (o->mode == 'i')
		return no_op("sendmail -bi", NOTE_ALIASES);
	if (o->mode == 'q')
		return no_op("sendmail -q", "the tern daemon runs its queue itself (tern queue flush retries "
		    "deferred mail now)");
	if (o->mode == 'v') {
		if (optind >= argc)
			return usage("-bv and -bt need the addresses to test");
		int r = cli_address_report(o->config, "sendmail", argc - optind, argv + optind);
		return r < 0 ? EX_CONFIG : r > 0 ? EX_NOUSER : 0;
	}
	return -1;
}

/* -N, -R, -V and -f checked; a bracketed -f '<addr>' is unwrapped into
 * *from_buf (the caller frees it). -1 to go on, else the exit code. */
static int
check_opts(struct opts *o, char **from_buf)
{
	if (o->notify && !word_ok(o->notify))
		return usage("-N takes never, or a list of success, failure, delay");
	if (o->ret && strcasecmp(o->ret, "full") != 0 && strcasecmp(o->ret, "hdrs") != 0)
		return usage("-R takes full or hdrs");
	if (o->envid && (strlen(o->envid) > 100 || !address_ok(o->envid)))
		return usage("-V: an envelope id of at most 100 printable characters");
	if (o->from && o->from[0] == '<') {
		/* -f '<addr>' or -f '<>' */
		size_t fl = strlen(o->from);
		if (fl < 2 || o->from[fl - 1] != '>')
			return usage("-f: not an address");
		*from_buf = xstrndup(o->from + 1, fl - 2);
		o->from = *from_buf;
	}
	if (o->from && o->from[0] && !address_ok(o->from))
		return usage("-f: not an address");
	return -1;
}

/* the recipients from the command line (and with -t the header), each
 * checked, local names put in our first local domain; 0 or an exit code */
static int
collect_recipients(const struct opts *o, const config_t *c, int argc, char **argv, buf_t *msg,
    strv_t *rcpts)
{
	for (int i = optind; i < argc; i++)
		parse_address_list(argv[i], strlen(argv[i]), rcpts);
	if (o->t)
		take_header_recipients(msg, rcpts);
	if (rcpts->n == 0) {
		fprintf(stderr, "sendmail: no recipients%s\n", o->t ? " (none in To, Cc or Bcc either)" : "");
		return o->t ? EX_DATAERR : EX_USAGE;
	}
	if (rcpts->n > MAX_RCPTS) {
		fprintf(stderr, "sendmail: more than %d recipients\n", MAX_RCPTS);
		return EX_DATAERR;
	}
	for (size_t i = 0; i < rcpts->n; i++) {
		if (!address_ok(rcpts->v[i])) {
			fprintf(stderr, "sendmail: <%s>: not an address\n", rcpts->v[i]);
			return EX_DATAERR;
		}
		if (!strchr(rcpts->v[i], '@')) {
			/* a local name: in our first local domain, like the sender */
			char *full = xasprintf("%s@%s", rcpts->v[i], config_local_user_domain(c));
			xfree(rcpts->v[i]);
			rcpts->v[i] = full;
		}
	}
	return 0;
}

/* -F: a From field with the name, when the message has none (the daemon
 * adds a bare one otherwise) */
static void
add_from_field(const struct opts *o, const char *me, buf_t *msg)
{
	if (!o->fullname || has_field(msg, "From"))
		return;
	buf_t m2 = BUF_INIT;
	buf_puts(&m2, "From: ");
	quoted_phrase(&m2, o->fullname);
	buf_printf(&m2, " <%s>\r\n", o->from && o->from[0] ? o->from : me);
	if (msg->len == 0 || header_end(msg) == 0)
		buf_puts(&m2, msg->len ? "" : "\r\n");
	buf_append(&m2, msg->data ? msg->data : "", msg->len);
	buf_free(msg);
	*msg = m2;
}

/* read the message, gather and check its recipients, hand it over */
static int
send_message(const struct opts *o, const config_t *c, int argc, char **argv)
{
	/* who we are (the daemon checks it with the kernel anyway) */
	struct passwd *pw = getpwuid(getuid());
	char *me = xasprintf("%s@%s", pw ? pw->pw_name : "nobody", config_local_user_domain(c));
	strv_t rcpts = {0};
	buf_t msg = BUF_INIT;
	int rc = read_message(o, c->message_size_limit, &msg);
	if (rc == 0)
		rc = collect_recipients(o, c, argc, argv, &msg, &rcpts);
	if (rc == 0) {
		add_from_field(o, me, &msg);
		rc = submit(o, c->local_socket, me, &rcpts, &msg);
	}
	strv_free(&rcpts);
	buf_free(&msg);
	xfree(me);
	return rc;
}

int
sendmail_main(const char *config, int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof o);
	o.config = config;
	o.mode = 'm';
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(prog, "newaliases") == 0)
		return no_op("newaliases", NOTE_ALIASES);
	int rc = parse_opts(&o, argc, argv);
	if (rc < 0)
		rc = run_query_mode(&o, argc, argv);
	char *from_buf = NULL;
	if (rc < 0)
		rc = check_opts(&o, &from_buf);
	if (rc >= 0) {
		xfree(from_buf);
		return rc;
	}

	buf_t err = BUF_INIT;
	config_t *c = config_load(o.config, &err);
	if (!c) {
		fprintf(stderr, "sendmail: cannot read the configuration:\n%s", buf_cstr(&err));
		buf_free(&err);
		xfree(from_buf);
		return EX_CONFIG;
	}
	buf_free(&err);
	if (!c->local_socket) {
		fprintf(stderr, "sendmail: local_socket is off in %s: local submission is disabled\n",
		    c->path);
		rc = EX_UNAVAILABLE;
	} else if (o.mode == 's') {
		rc = relay_smtp(c->local_socket);
	} else {
		rc = send_message(&o, c, argc, argv);
	}
	config_free(c);
	xfree(from_buf);
	return rc;
}
