/*
 * dkim.c (cli) - `tern dkim keygen|sign|verify` (see dkim.h).
 *
 * A message read from stdin may have CRLF or bare LF line ends (a file
 * saved by a mail client, a here-document): bare LFs are taken as CRLF for
 * signing and verifying, as they would be on the wire, and `sign` prints
 * the signature with the line ends the message came with.
 * Must not: run in the daemon (it blocks on stdin, DNS and the disk);
 * overwrite a key file.
 */
#include "cli/dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

#define MSG_MAX (256u * 1024 * 1024)

static void
usage(FILE *to)
{
	fprintf(to, "usage: tern [-c config] dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--dir DIR]\n"
	    "       tern dkim sign --key FILE --domain DOMAIN --selector SELECTOR [--time T] < message\n"
	    "       tern dkim verify [--dns-servers \"IP[@PORT] ...\"] [--time T] < message\n"
	    "       tern dkim arc-verify [--dns-servers \"IP[@PORT] ...\"] < message\n"
	    "       tern dkim arc-seal --key FILE --domain DOMAIN --selector SELECTOR\n"
	    "                [--authres \"ID; method=result ...\" | --authserv-id ID]\n"
	    "                [--dns-servers \"IP[@PORT] ...\"] [--time T] < message\n"
	    "keygen writes DIR/SELECTOR.DOMAIN.key (mode 0600; as root owned by the config's user;\n"
	    "RSA 2048 bits by default) and prints the TXT record to publish.\n"
	    "sign prints the message with a DKIM-Signature (relaxed/relaxed) on top.\n"
	    "verify prints one line per signature: RESULT d=DOMAIN s=SELECTOR a=ALG (reason);\n"
	    "exit 0 when one passes. --time: the clock, in seconds since 1970 (tests).\n"
	    "arc-verify prints the ARC chain's result (RFC 8617): RESULT i=N (reason); exit 0 on pass.\n"
	    "arc-seal verifies the chain, then prints the message with our ARC set on top (the\n"
	    "ARC-Authentication-Results: --authres as given, or \"ID; arc=RESULT\").\n"
	    "Details: docs/dkim.md\n");
}

/* ---- keygen ---- */

/* tern's user when run as root: the config's "user", else "tern" */
static int
owner_of_keys(const char *config, uid_t *uid, gid_t *gid, const char **name)
{
	buf_t err = BUF_INIT;
	config_t *c = config_load(config, &err);
	buf_free(&err);
	const char *user = c && c->user ? c->user : "tern";
	struct passwd *pw = getpwnam(user);
	static char who[64];
	snprintf(who, sizeof who, "%s", user);
	config_free(c);
	if (!pw)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	*name = who;
	return 0;
}

static int
keygen(const char *config, int argc, char **argv)
{
	const char *domain = NULL, *selector = NULL, *dir = ".";
	bool ed = false;
	long bits = 2048;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--ed25519") == 0) {
			ed = true;
		} else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) {
			char *end;
			bits = strtol(argv[++i], &end, 10);
			if (*end || bits < 1024 || bits > 8192) {
				fprintf(stderr, "tern dkim keygen: --bits takes 1024 to 8192 (2048 is the norm)\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (argv[i][0] == '-') {
			usage(stderr);
			return 2;
		} else if (!domain) {
			domain = argv[i];
		} else if (!selector) {
			selector = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!domain || !selector) {
		usage(stderr);
		return 2;
	}
	char *dom = xstrdup(domain);
	for (char *p = dom; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!dkim_name_ok(dom) || !dkim_name_ok(selector)) {
		fprintf(stderr, "tern dkim keygen: bad domain or selector (letters, digits, '-', '_', dots)\n");
		xfree(dom);
		return 2;
	}
	EVP_PKEY *pk = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
	    : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (!pk) {
		fprintf(stderr, "tern dkim keygen: key generation failed\n");
		xfree(dom);
		return 1;
	}
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pl = 0;
	if (bio && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1)
		pl = BIO_get_mem_data(bio, &pem);
	char *path = xasprintf("%s/%s.%s.key", dir, selector, dom);
	int rc = 1;
	int fd = -1;
	if (pl <= 0) {
		fprintf(stderr, "tern dkim keygen: cannot encode the key\n");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tern dkim keygen: %s: %s%s\n", path, strerror(errno),
		    errno == EEXIST ? " (a key is never overwritten: remove it first)" : "");
		goto out;
	}
	const char *owner = NULL;
	if (geteuid() == 0) {
		uid_t uid;
		gid_t gid;
		if (owner_of_keys(config, &uid, &gid, &owner) < 0) {
			fprintf(stderr, "tern dkim keygen: no user for tern (config \"user\", or \"tern\"): "
			    "the key stays root's, which the daemon cannot read\n");
			owner = NULL;
		} else if (fchown(fd, uid, gid) < 0) {
			fprintf(stderr, "tern dkim keygen: %s: chown: %s\n", path, strerror(errno));
			goto out;
		}
	}
	if (write_all(fd, pem, (size_t)pl) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "tern dkim keygen: %s: %s\n", path, strerror(errno));
		unlink(path);
		goto out;
	}
	dkim_key_t *k = NULL;
	buf_t err = BUF_INIT, rec = BUF_INIT;
	close(fd);
	fd = -1;
	k = dkim_key_load(path, &err);
	if (!k || (buf_printf(&rec, "v=DKIM1; k=%s; p=", dkim_key_type(k)), dkim_key_public(k, &rec)) < 0) {
		fprintf(stderr, "tern dkim keygen: %s\n", buf_cstr(&err));
		dkim_key_free(k);
		buf_free(&err);
		buf_free(&rec);
		goto out;
	}
	char what[32];
	if (ed)
		snprintf(what, sizeof what, "ed25519");
	else
		snprintf(what, sizeof what, "rsa %ld bits", bits);
	fprintf(stderr, "wrote %s (%s, mode 0600%s%s); publish this TXT record:\n", path, what,
	    owner ? ", owner " : "", owner ? owner : "");
	/* RFC 1035: a character-string holds at most 255 octets */
	printf("%s._domainkey.%s. IN TXT", selector, dom);
	for (size_t i = 0; i < rec.len; i += 255) {
		size_t n = rec.len - i < 255 ? rec.len - i : 255;
		printf(" \"%.*s\"", (int)n, rec.data + i);
	}
	printf("\n");
	dkim_key_free(k);
	buf_free(&err);
	buf_free(&rec);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	xfree(path);
	xfree(dom);
	return rc;
}

/* ---- the message on stdin ---- */

/* stdin, with bare LFs as CRLF in *crlf; *lf: the input used bare LFs */
static int
read_message(buf_t *crlf, bool *lf)
{
	buf_t in = BUF_INIT;
	char chunk[65536];
	for (;;) {
		ssize_t r = read(0, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "tern dkim: cannot read the message on stdin: %s\n", strerror(errno));
			buf_free(&in);
			return -1;
		}
		if (r == 0)
			break;
		if (in.len + (size_t)r > MSG_MAX) {
			fprintf(stderr, "tern dkim: the message is over %u octets\n", MSG_MAX);
			buf_free(&in);
			return -1;
		}
		buf_append(&in, chunk, (size_t)r);
	}
	*lf = false;
	buf_reserve(crlf, in.len + in.len / 16);
	for (size_t i = 0; i < in.len; i++) {
		if (in.data[i] == '\n' && (i == 0 || in.data[i - 1] != '\r')) {
			buf_putc(crlf, '\r');
			*lf = true;
		}
		buf_putc(crlf, in.data[i]);
	}
	buf_free(&in);
	return 0;
}

static bool
parse_time(const char *s, time_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*end || v < 0)
		return false;
	*out = (time_t)v;
	return true;
}

static int
sign(int argc, char **argv)
{
	const char *key = NULL, *domain = NULL, *selector = NULL;
	time_t now = time(NULL);
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--key") == 0)
			key = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--domain") == 0)
			domain = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--selector") == 0)
			selector = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--time") == 0 && parse_time(argv[i + 1], &now))
			i++;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!key || !domain || !selector) {
		usage(stderr);
		return 2;
	}
	buf_t err = BUF_INIT, msg = BUF_INIT, sig = BUF_INIT;
	int rc = 1;
	dkim_key_t *k = dkim_key_load(key, &err);
	if (!k) {
		fprintf(stderr, "tern dkim sign: %s\n", buf_cstr(&err));
		goto out;
	}
	bool lf;
	if (read_message(&msg, &lf) < 0)
		goto out;
	if (dkim_sign(k, domain, selector, msg.data ? msg.data : "", msg.len, now, &sig, &err) < 0) {
		fprintf(stderr, "tern dkim sign: %s\n", buf_cstr(&err));
		goto out;
	}
	buf_append(&sig, msg.data, msg.len);
	for (size_t i = 0; i < sig.len; i++)
		if (!(lf && sig.data[i] == '\r' && i + 1 < sig.len && sig.data[i + 1] == '\n'))
			putchar(sig.data[i]);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	dkim_key_free(k);
	buf_free(&err);
	buf_free(&msg);
	buf_free(&sig);
	return rc;
}

/* ---- verify ---- */

typedef struct vwait {
	bool done;
	int pass;
} vwait_t;

static void
on_verified(void *arg, const dkim_sig_result_t *r, size_t n)
{
	vwait_t *w = arg;
	w->done = true;
	if (n == 0)
		printf("none (no DKIM-Signature)\n");
	for (size_t i = 0; i < n; i++) {
		printf("%s d=%s s=%s a=%s", dkim_result_str(r[i].result), r[i].d, r[i].s, r[i].a);
		if (r[i].i[0])
			printf(" i=%s", r[i].i);
		if (r[i].testing)
			printf(" testing");
		if (r[i].reason[0])
			printf(" (%s)", r[i].reason);
		printf("\n");
		if (r[i].result == DKIM_PASS)
			w->pass++;
	}
	fflush(stdout);
}

/* a resolver on loop: servers "IP[@PORT] ..." or /etc/resolv.conf */
static dns_t *
open_dns(uv_loop_t *loop, const char *servers, buf_t *err)
{
	char *list = servers ? xstrdup(servers) : NULL;
	const char *sv[33];
	size_t ns = 0;
	char *save = NULL;
	for (char *tok = list ? strtok_r(list, " \t,", &save) : NULL; tok && ns < 32;
	     tok = strtok_r(NULL, " \t,", &save))
		sv[ns++] = tok;
	sv[ns] = NULL;
	dns_options_t dopt;
	memset(&dopt, 0, sizeof dopt);
	dopt.servers = ns ? sv : NULL;
	dopt.timeout_ms = 5000;
	dns_t *dns = dns_new(loop, &dopt, err);
	xfree(list);
	return dns;
}

static int
verify(int argc, char **argv)
{
	const char *servers = NULL;
	dkim_verify_opts_t o;
	memset(&o, 0, sizeof o);
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--dns-servers") == 0)
			servers = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--time") == 0 && parse_time(argv[i + 1], &o.now))
			i++;
		else {
			usage(stderr);
			return 2;
		}
	}
	buf_t msg = BUF_INIT, err = BUF_INIT;
	bool lf;
	if (read_message(&msg, &lf) < 0)
		return 1;
	uv_loop_t loop;
	uv_loop_init(&loop);
	dns_t *dns = open_dns(&loop, servers, &err);
	int rc = 1;
	if (!dns) {
		fprintf(stderr, "tern dkim verify: DNS: %s\n", buf_cstr(&err));
	} else {
		dkim_verify_t *v = dkim_verify_new(&o);
		/* in pieces, as DATA arrives */
		for (size_t i = 0; i < msg.len; i += 4096)
			dkim_verify_feed(v, msg.data + i, msg.len - i < 4096 ? msg.len - i : 4096);
		vwait_t w = {false, 0};
		dkim_verify_finish(v, dns, on_verified, &w);
		while (!w.done)
			uv_run(&loop, UV_RUN_ONCE);
		dkim_verify_free(v);
		rc = w.pass ? 0 : 1;
		dns_free(dns);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	buf_free(&msg);
	buf_free(&err);
	return rc;
}

/* ---- ARC ---- */

typedef struct await {
	bool done;
	enum arc_result result;
	unsigned n;
	char reason[128];
} await_t;

static void
on_arc(void *arg, const arc_verdict_t *r)
{
	await_t *w = arg;
	w->done = true;
	w->result = r->result;
	w->n = r->instances;
	snprintf(w->reason, sizeof w->reason, "%s", r->reason);
}

/* the chain of msg (CRLF); -1 when DNS cannot be set up */
static int
arc_check(const buf_t *msg, const char *servers, await_t *w)
{
	buf_t err = BUF_INIT;
	uv_loop_t loop;
	uv_loop_init(&loop);
	dns_t *dns = open_dns(&loop, servers, &err);
	int rc = -1;
	if (!dns) {
		fprintf(stderr, "tern dkim: DNS: %s\n", buf_cstr(&err));
	} else {
		arc_verify_t *v = arc_verify_new(NULL);
		for (size_t i = 0; i < msg->len; i += 4096)
			arc_verify_feed(v, msg->data + i, msg->len - i < 4096 ? msg->len - i : 4096);
		memset(w, 0, sizeof *w);
		arc_verify_finish(v, dns, on_arc, w);
		while (!w->done)
			uv_run(&loop, UV_RUN_ONCE);
		arc_verify_free(v);
		dns_free(dns);
		rc = 0;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	buf_free(&err);
	return rc;
}

static int
arc_verify_cmd(int argc, char **argv)
{
	const char *servers = NULL;
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--dns-servers") == 0) {
			servers = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	buf_t msg = BUF_INIT;
	bool lf;
	await_t w;
	if (read_message(&msg, &lf) < 0 || arc_check(&msg, servers, &w) < 0) {
		buf_free(&msg);
		return 1;
	}
	printf("%s i=%u", arc_result_str(w.result), w.n);
	if (w.reason[0])
		printf(" (%s)", w.reason);
	printf("\n");
	buf_free(&msg);
	return w.result == ARC_PASS ? 0 : 1;
}

static int
arc_seal_cmd(int argc, char **argv)
{
	const char *key = NULL, *domain = NULL, *selector = NULL, *servers = NULL, *authres = NULL,
		   *id = NULL;
	time_t now = time(NULL);
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--key") == 0)
			key = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--domain") == 0)
			domain = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--selector") == 0)
			selector = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--dns-servers") == 0)
			servers = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--authres") == 0)
			authres = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--authserv-id") == 0)
			id = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--time") == 0 && parse_time(argv[i + 1], &now))
			i++;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!key || !domain || !selector || (!authres && !id)) {
		usage(stderr);
		return 2;
	}
	buf_t err = BUF_INIT, msg = BUF_INIT, set = BUF_INIT, ar = BUF_INIT;
	int rc = 1;
	bool lf;
	await_t w;
	dkim_key_t *k = dkim_key_load(key, &err);
	if (!k) {
		fprintf(stderr, "tern dkim arc-seal: %s\n", buf_cstr(&err));
		goto out;
	}
	if (read_message(&msg, &lf) < 0 || arc_check(&msg, servers, &w) < 0)
		goto out;
	if (authres)
		buf_puts(&ar, authres);
	else
		buf_printf(&ar, "%s; arc=%s", id, arc_result_str(w.result));
	if (arc_seal(k, domain, selector, ar.data, w.result, msg.data ? msg.data : "", msg.len, now, &set,
	    &err) < 0) {
		fprintf(stderr, "tern dkim arc-seal: %s\n", buf_cstr(&err));
		goto out;
	}
	buf_append(&set, msg.data, msg.len);
	for (size_t i = 0; i < set.len; i++)
		if (!(lf && set.data[i] == '\r' && i + 1 < set.len && set.data[i + 1] == '\n'))
			putchar(set.data[i]);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	dkim_key_free(k);
	buf_free(&err);
	buf_free(&msg);
	buf_free(&set);
	buf_free(&ar);
	return rc;
}

int
cli_dkim(const char *config, int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0 ||
	    (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0))) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return keygen(config, argc, argv);
	if (strcmp(argv[1], "sign") == 0)
		return sign(argc, argv);
	if (strcmp(argv[1], "verify") == 0)
		return verify(argc, argv);
	if (strcmp(argv[1], "arc-verify") == 0)
		return arc_verify_cmd(argc, argv);
	if (strcmp(argv[1], "arc-seal") == 0)
		return arc_seal_cmd(argc, argv);
	usage(stderr);
	return 2;
}
