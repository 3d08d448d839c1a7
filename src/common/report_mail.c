/*
 * report_mail.c - report messages (contract in report_mail.h).
 */
#include "common/report_mail.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

void
report_mail_build(const report_mail_t *m, buf_t *out)
{
	unsigned char rnd[8];
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		memset(rnd, 0x5a, sizeof rnd);
	char bnd[64];
	snprintf(bnd, sizeof bnd, "=_%.16s_%02x%02x%02x%02x%02x%02x%02x%02x", m->tag, rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	char date[64];
	struct tm tm;
	gmtime_r(&m->date, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(out, "From: <%s>\r\nTo: <%s>\r\n", m->from, m->to);
	buf_printf(out, "Subject: %s\r\n", m->subject);
	buf_printf(out, "Date: %s\r\nMessage-ID: <%s.%02x%02x%02x%02x.%s>\r\n", date, m->tag, rnd[0],
	    rnd[1], rnd[2], rnd[3], m->id);
	if (m->headers)
		buf_puts(out, m->headers);
	buf_printf(out, "MIME-Version: 1.0\r\nContent-Type: multipart/%s; boundary=\"%s\"\r\n\r\n",
	    m->multipart, bnd);
	buf_printf(out, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n", bnd,
	    m->text);
	buf_printf(out, "--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
			"Content-Transfer-Encoding: base64\r\n"
			"Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
	    bnd, m->att_type, m->filename, m->filename);
	/* base64 in lines of 76 (57 octets each) */
	unsigned char line[80];
	const unsigned char *a = m->att;
	for (size_t i = 0; i < m->att_len; i += 57) {
		size_t k = m->att_len - i < 57 ? m->att_len - i : 57;
		int w = EVP_EncodeBlock(line, a + i, (int)k);
		buf_append(out, line, (size_t)w);
		buf_puts(out, "\r\n");
	}
	buf_printf(out, "\r\n--%s--\r\n", bnd);
}
