/*
 * config_int.h - what the files of the configuration reader share; not a
 * public interface: included only by src/common/config*.c (callers use
 * config.h).
 *
 * config.c        the key table cfg_keys[] (THE one place a key is added),
 *                 the line parser, defaults, load/free and the queries;
 * config_value.c  the value parsers and checks and one setter per type;
 * config_check.c  checks across keys and the "did you mean" hint.
 *
 * Guarantees: nothing here touches the network or logs (see config.c).
 */
#ifndef TERN_COMMON_CONFIG_INT_H
#define TERN_COMMON_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/config.h"
#include "lib/buf.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_LINE 65536
#define CONFIG_MAX_ERRORS 100
#define CONFIG_MAX_LIST 4096 /* entries in one list key (domains, networks, listen) */
/* room for this many keys in cfg_parser_t; config.c asserts cfg_keys[] fits */
#define CFG_MAX_KEYS 256

enum cfg_type {
	CT_STRING,   /* one word; empty = NULL */
	CT_DOMAIN,   /* one domain name, kept as written */
	CT_PATH,     /* one path, made absolute; empty = NULL when CF_OPTIONAL */
	CT_DOMAINS,  /* list of domain names, lowercased, duplicates dropped */
	CT_LISTEN,   /* list of ADDR:PORT [mode] */
	CT_CHAR,     /* one character or empty (= '\0') */
	CT_NETS,     /* list of networks */
	CT_NUMBER,   /* plain decimal number */
	CT_SIZE,     /* number with k, M, G */
	CT_DURATION, /* number with s, m, h, d, w */
	CT_WORDS,    /* list of words, each passed to check, kept as written */
	CT_MILTER,   /* NAME inet:PORT@HOST|unix:PATH [option=value ...] */
	CT_BOOL,     /* yes/no, true/false, on/off, 1/0 (any case), stored as bool */
	CT_TLSCERT,  /* CERTFILE [KEYFILE] */
};

#define CF_REPEAT 0x01   /* may appear on several lines, values accumulate */
#define CF_OPTIONAL 0x02 /* an empty value means "none" (NULL) */
#define CF_NONE_WORD 0x04 /* CT_PATH: the word "none" is kept as written, not made a path */

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off;  /* offsetof(config_t, field) */
	size_t size; /* sizeof field (numbers are stored by width) */
	size_t noff; /* lists: offsetof the count field */
	unsigned flags;
	const char *def; /* default, in file syntax; NULL = none (hostname: gethostname()) */
	uint64_t min, max;
	/* extra check of one value: NULL when good, else why not */
	const char *(*check)(const char *v);
};

/* the table (config.c) and its length */
extern const struct cfg_key cfg_keys[];
extern const size_t cfg_nkeys;

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define DAY 86400ull

typedef struct cfg_parser {
	const char *name;    /* file name for messages */
	const char *basedir; /* absolute directory for relative paths */
	buf_t *errors;
	unsigned nerrors;
	config_t *c;
	unsigned set_line[CFG_MAX_KEYS]; /* line each key was (first) set on; 0 = not set */
	bool failed[CFG_MAX_KEYS];       /* its value was refused */
	/* parallel to c->listen; a fixed array (set_listen() keeps nlisten below
	 * CONFIG_MAX_LIST), not a growing one, because the static analyzer
	 * cannot see that c->nlisten starts at 0 (xcalloc) and reported the
	 * growing array's initial NULL as dereferenced */
	unsigned listen_line[CONFIG_MAX_LIST];
} cfg_parser_t;

typedef struct tokens {
	char **v;
	size_t n;
} tokens_t;

/* values quoted in messages are cut to this many octets */
#define SHOW 80
#define SHOWV(s) (strlen(s) > SHOW ? SHOW : (int)strlen(s)), (s), (strlen(s) > SHOW ? "..." : "")

/* config.c */
void cfg_error(cfg_parser_t *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* index of a key named in the code (aborts on a name not in cfg_keys[]) */
size_t cfg_key_index(const char *name);

/* config_value.c: the extra checks named in cfg_keys[] (NULL = good, else why not) */
const char *check_user(const char *v);
const char *check_relayhost(const char *v);
const char *check_dns_servers(const char *v);
const char *check_dnsbl_stage(const char *v);
const char *check_auth_backend(const char *v);
const char *check_dovecot_socket(const char *v);
const char *check_rate(const char *v);
const char *check_redis(const char *v);
const char *check_open_closed(const char *v);
const char *check_delimiter(const char *v);
const char *check_http_listen(const char *v);
const char *check_tls_protocols(const char *v);
const char *check_list_user(const char *v);
const char *check_tag_reject(const char *v);
const char *check_tag_defer(const char *v);
const char *check_tag_hold(const char *v);
const char *check_log_format(const char *v);
const char *check_authserv_id(const char *v);
const char *check_report_email(const char *v);
/* config_value.c: words, values and setters */
bool cfg_valid_domain(const char *s);
bool cfg_key_char(int ch);
void cfg_tokens_free(tokens_t *t);
int cfg_tokenize(const char *s, tokens_t *out);
void cfg_fmt_duration(char *out, size_t n, uint64_t v);
char *cfg_make_absolute(const char *base, const char *v);
void cfg_free_strv(char **v, size_t n);
/* store one key's value (t: its words) into p->c; -1 after cfg_error() */
int cfg_set(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t);

/* config_check.c */
/* the key a misspelt or Postfix name most likely meant, or NULL */
const char *cfg_key_hint(const char *name);
/* conflicts between keys that are each valid alone, reported via cfg_error() */
void cfg_cross_checks(cfg_parser_t *p);

#endif
