/*
 * dkim_sign.c - MAILAUTH: DKIM signing keys and signatures (see dkim.h):
 * rsa-sha256 (RSA PKCS#1 v1.5) or ed25519-sha256 (RFC 8463: Ed25519 over
 * the SHA-256 hash of the header data), chosen by the key's type;
 * relaxed/relaxed canonicalisation (RFC 6376 section 3.4).
 *
 * The field written: v, a, c, d, s, t, h (the fields of dkim.h's list that
 * are present, the ones RFC 6376 section 8.15 says to over-sign listed once
 * more than present, so an added one breaks the signature), bh, b; folded
 * with CRLF TAB so no line passes 78 columns, b= last.
 *
 * Guarantees: dkim_sign() reads only its arguments and the key, which no
 * one changes after dkim_key_load(): it may run on any thread, many at
 * once with one key. Keys are RSA of at least 1024 bits or Ed25519.
 * Must not: log, or keep anything between calls.
 */
#include "mailauth/dkim.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

#define KEY_MAX_FILE (64u * 1024)

struct dkim_key {
	EVP_PKEY *pk;
	bool rsa;
};

/* never prompt for a passphrase: an encrypted key is refused */
static int
no_pass(char *b, int size, int rw, void *u)
{
	(void)b;
	(void)size;
	(void)rw;
	(void)u;
	return -1;
}

dkim_key_t *
dkim_key_load(const char *path, buf_t *err)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *data = xmalloc(KEY_MAX_FILE + 1);
	size_t n = fread(data, 1, KEY_MAX_FILE + 1, f);
	bool rerr = ferror(f) != 0;
	fclose(f);
	if (rerr || n > KEY_MAX_FILE) {
		buf_printf(err, "%s: %s", path, rerr ? "read error" : "too large for a key");
		xfree(data);
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(data, (int)n);
	EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_pass, NULL) : NULL;
	BIO_free(bio);
	explicit_bzero(data, n);
	xfree(data);
	ERR_clear_error();
	if (!pk) {
		buf_printf(err, "%s: not a PEM private key (PKCS#8 or RSA, unencrypted)", path);
		return NULL;
	}
	int id = EVP_PKEY_get_base_id(pk);
	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(pk);
		if (bits < 1024) {
			buf_printf(err, "%s: RSA key of %d bits: DKIM needs at least 1024 (RFC 8301), "
			    "2048 is the norm", path, bits);
			EVP_PKEY_free(pk);
			return NULL;
		}
	} else if (id != EVP_PKEY_ED25519) {
		buf_printf(err, "%s: neither an RSA nor an Ed25519 key", path);
		EVP_PKEY_free(pk);
		return NULL;
	}
	dkim_key_t *k = xcalloc(1, sizeof *k);
	k->pk = pk;
	k->rsa = id == EVP_PKEY_RSA;
	return k;
}

void
dkim_key_free(dkim_key_t *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pk);
	xfree(k);
}

const char *
dkim_key_type(const dkim_key_t *k)
{
	return k->rsa ? "rsa" : "ed25519";
}

int
dkim_key_public(const dkim_key_t *k, buf_t *b64)
{
	if (k->rsa) {
		unsigned char *der = NULL;
		int n = i2d_PUBKEY(k->pk, &der);
		if (n <= 0)
			return -1;
		dkim_base64_encode(der, (size_t)n, b64);
		OPENSSL_free(der);
		return 0;
	}
	unsigned char raw[32];
	size_t rl = sizeof raw;
	if (EVP_PKEY_get_raw_public_key(k->pk, raw, &rl) != 1 || rl != 32)
		return -1;
	dkim_base64_encode(raw, rl, b64);
	return 0;
}

/* the fields signed, in this order; the first six over-signed */
static const char *const sign_fields[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
};
#define OVERSIGNED 6

static void
hash_sink(void *arg, const char *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

/* appends s to the field, folding first when the line would pass 76 columns */
static void
put_folded(buf_t *out, size_t *col, const char *s, size_t n)
{
	if (*col + n > 76 && *col > 1) {
		buf_append(out, "\r\n\t", 3);
		*col = 1;
		if (n > 1 && *s == ' ') {
			s++;
			n--;
		}
	}
	buf_append(out, s, n);
	*col += n;
}

void
dkim_header_end(const char *content, size_t len, size_t *hlen, size_t *boff)
{
	*hlen = len;
	*boff = len;
	if (len >= 2 && content[0] == '\r' && content[1] == '\n') {
		*hlen = 0;
		*boff = 2;
		return;
	}
	const char *p = content, *end = content + len;
	while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL && end - p >= 4) {
		if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
			*hlen = (size_t)(p - content) + 2;
			*boff = (size_t)(p - content) + 4;
			return;
		}
		p++;
	}
}

int
dkim_key_sign_b64(const dkim_key_t *k, const char *data, size_t len, buf_t *b64, buf_t *err)
{
	unsigned char sig[1024];
	size_t slen = sizeof sig;
	int ok;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (k->rsa) {
		ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
		    EVP_DigestSign(md, sig, &slen, (const unsigned char *)data, len) == 1;
	} else {
		/* RFC 8463 section 3: Ed25519 over the SHA-256 hash */
		unsigned char hash[32];
		unsigned dl = 0;
		ok = md && EVP_Digest(data, len, hash, &dl, EVP_sha256(), NULL) == 1 &&
		    EVP_DigestSignInit(md, NULL, NULL, NULL, k->pk) == 1 &&
		    EVP_DigestSign(md, sig, &slen, hash, sizeof hash) == 1;
	}
	EVP_MD_CTX_free(md);
	if (!ok) {
		ERR_clear_error();
		buf_puts(err, "signing failed (OpenSSL)");
		return -1;
	}
	dkim_base64_encode(sig, slen, b64);
	return 0;
}

int
dkim_sign(const dkim_key_t *k, const char *domain, const char *selector, const char *content,
    size_t len, time_t now, buf_t *out, buf_t *err)
{
	return dkim_sign_field(k, "DKIM-Signature", "v=1", domain, selector, content, len, now, false,
	    out, err);
}

int
dkim_sign_field(const dkim_key_t *k, const char *field, const char *first, const char *domain,
    const char *selector, const char *content, size_t len, time_t now, bool dkim_sigs, buf_t *out,
    buf_t *err)
{
	if (!dkim_name_ok(domain) || !dkim_name_ok(selector)) {
		buf_printf(err, "bad DKIM domain or selector (%s, %s)", domain, selector);
		return -1;
	}
	size_t hlen, boff;
	dkim_header_end(content, len, &hlen, &boff);
	dkim_field_t *fields;
	size_t nfields;
	dkim_fields_split(content, hlen, &fields, &nfields);

	int rc = -1;
	buf_t hdr = BUF_INIT, data = BUF_INIT, b64 = BUF_INIT;
	unsigned char bh[32];
	unsigned hl = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md) {
		buf_puts(err, "out of memory");
		goto done;
	}

	/* bh= (relaxed body, all of it) */
	dkim_canon_t canon;
	dkim_canon_init(&canon, true, hash_sink, md);
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto crypto;
	dkim_canon_body(&canon, content + boff, len - boff);
	dkim_canon_end(&canon);
	if (EVP_DigestFinal_ex(md, bh, &hl) != 1)
		goto crypto;

	/* the field, b= empty; h= and the header data together */
	size_t col;
	buf_printf(&hdr, "%s: %s; a=%s; c=relaxed/relaxed; d=%s;", field, first,
	    k->rsa ? "rsa-sha256" : "ed25519-sha256", domain);
	col = hdr.len;
	char tmp[300];
	int tl = snprintf(tmp, sizeof tmp, " s=%s;", selector);
	put_folded(&hdr, &col, tmp, (size_t)tl);
	tl = snprintf(tmp, sizeof tmp, " t=%lld;", (long long)now);
	put_folded(&hdr, &col, tmp, (size_t)tl);
	bool *used = xcalloc(nfields ? nfields : 1, sizeof *used);
	bool hfirst = true, from = false;
	size_t nnames = sizeof sign_fields / sizeof sign_fields[0] + (dkim_sigs ? 1 : 0);
	for (size_t i = 0; i < nnames; i++) {
		const char *name = i < sizeof sign_fields / sizeof sign_fields[0] ? sign_fields[i]
		    : "DKIM-Signature";
		size_t nl = strlen(name);
		size_t present = 0;
		for (size_t j = 0; j < nfields; j++)
			if (dkim_field_is(&fields[j], name, nl))
				present++;
		if (!present)
			continue;
		if (i == 0)
			from = true;
		size_t times = present + (i < OVERSIGNED ? 1 : 0);
		for (size_t t = 0; t < times; t++) {
			tl = snprintf(tmp, sizeof tmp, "%s%s", hfirst ? " h=" : ":", name);
			put_folded(&hdr, &col, tmp, (size_t)tl);
			hfirst = false;
			/* section 5.4.2: bottom up; a name listed once more than
			 * present adds nothing */
			for (size_t j = nfields; j-- > 0;) {
				if (used[j] || !dkim_field_is(&fields[j], name, nl))
					continue;
				used[j] = true;
				dkim_canon_header(true, fields[j].p, fields[j].len, &data);
				buf_append(&data, "\r\n", 2);
				break;
			}
		}
	}
	xfree(used);
	if (!from) {
		buf_puts(err, "the message has no From field to sign");
		goto done;
	}
	buf_putc(&hdr, ';');
	col++;
	buf_puts(&b64, " bh=");
	dkim_base64_encode(bh, sizeof bh, &b64);
	buf_putc(&b64, ';');
	put_folded(&hdr, &col, b64.data, b64.len);
	put_folded(&hdr, &col, " b=", 3);
	dkim_canon_header(true, hdr.data, hdr.len, &data);

	buf_reset(&b64);
	if (dkim_key_sign_b64(k, data.data, data.len, &b64, err) < 0)
		goto done;
	for (size_t i = 0; i < b64.len;) {
		size_t room = col < 76 ? 76 - col : 0;
		if (room < 8) {
			buf_append(&hdr, "\r\n\t", 3);
			col = 1;
			continue;
		}
		size_t take = b64.len - i < room ? b64.len - i : room;
		buf_append(&hdr, b64.data + i, take);
		col += take;
		i += take;
	}
	buf_append(&hdr, "\r\n", 2);
	buf_append(out, hdr.data, hdr.len);
	rc = 0;
	goto done;
crypto:
	buf_puts(err, "signing failed (OpenSSL)");
	ERR_clear_error();
done:
	EVP_MD_CTX_free(md);
	buf_free(&hdr);
	buf_free(&data);
	buf_free(&b64);
	xfree(fields);
	return rc;
}
