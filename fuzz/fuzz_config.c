/*
 * fuzz_config.c - libFuzzer target for src/common/config*.c.
 *
 * Parses the input as a configuration file (config_parse_buf) and checks
 * invariants: a file either loads with no error text, or fails with only
 * "fuzz.conf:LINE: message" lines; a loaded configuration has every value
 * inside its documented bounds; the query functions and the exported value
 * parsers never misbehave. Any broken invariant abort()s. Must not leak.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_errors(const char *e)
{
	CHECK(*e != '\0');
	while (*e) {
		const char *nl = strchr(e, '\n');
		CHECK(nl != NULL);
		CHECK(strncmp(e, "fuzz.conf:", 10) == 0);
		const char *p = e + 10;
		CHECK(*p >= '0' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		CHECK(p[0] == ':' && p[1] == ' ');
		for (const char *q = e; q < nl; q++)
			CHECK((unsigned char)*q >= 0x20 || *q == '\t');
		e = nl + 1;
	}
}

static void
check_config(const config_t *c)
{
	CHECK(c->path[0] == '/');
	CHECK(c->hostname && c->hostname[0]);
	CHECK(c->nlisten >= 1);
	for (size_t i = 0; i < c->nlisten; i++) {
		unsigned char b[16];
		CHECK(inet_pton(strchr(c->listen[i].addr, ':') ? AF_INET6 : AF_INET,
		    c->listen[i].addr, b) == 1);
		CHECK(c->listen[i].port >= 0 && c->listen[i].port <= 65535);
	}
	CHECK(c->spool_dir[0] == '/' && c->maildir_base[0] == '/');
	CHECK(c->mailboxes_file == NULL || c->mailboxes_file[0] == '/');
	CHECK(c->aliases_file == NULL || c->aliases_file[0] == '/');
	CHECK(c->virtual_file == NULL || c->virtual_file[0] == '/');
	for (size_t i = 0; i < c->nlocal_domains; i++) {
		CHECK(config_is_local_domain(c, c->local_domains[i]));
		CHECK(!config_is_virtual_domain(c, c->local_domains[i]));
		for (const char *p = c->local_domains[i]; *p; p++)
			CHECK(!(*p >= 'A' && *p <= 'Z'));
	}
	for (size_t i = 0; i < c->nvirtual_domains; i++)
		CHECK(config_is_virtual_domain(c, c->virtual_domains[i]));
	for (size_t i = 0; i < c->nmynetworks; i++) {
		const netmask_t *m = &c->mynetworks[i];
		CHECK(m->family == AF_INET ? m->prefix <= 32 : m->prefix <= 128);
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (m->family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, m->addr, 4);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, m->addr, 16);
		}
		/* an IPv4-mapped address is matched as IPv4 only (by design) */
		if (m->family == AF_INET6 &&
		    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)m->addr))
			continue;
		CHECK(config_in_mynetworks(c, (struct sockaddr *)&ss));
	}
	CHECK(c->message_size_limit > 0);
	CHECK(c->max_recipients >= 100);
	CHECK(c->max_line_length >= 1000 && c->max_command_length >= 512);
	CHECK(c->max_errors >= 1 && c->max_sessions >= 1 && c->max_sessions_per_ip >= 1);
	CHECK(c->timeout_command >= 1 && c->timeout_data >= 1);
	CHECK(c->retry_min >= 1 && c->retry_min <= c->retry_max);
	CHECK(c->queue_lifetime >= 1);
	CHECK(c->delay_warning == 0 || c->delay_warning < c->queue_lifetime);
	CHECK(c->local_concurrency >= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	buf_t e = BUF_INIT;
	config_t *c = config_parse_buf("fuzz.conf", (const char *)data, size, &e);
	if (c) {
		CHECK(e.len == 0);
		check_config(c);
		config_free(c);
	} else {
		check_errors(buf_cstr(&e));
	}
	buf_free(&e);

	/* the value parsers on the first line, as a C string */
	if (size < 256) {
		char s[256];
		memcpy(s, data, size);
		s[size] = '\0';
		unsigned d;
		uint64_t z;
		netmask_t m;
		if (config_parse_duration(s, &d) == 0)
			CHECK(strlen(s) > 0);
		if (config_parse_size(s, &z) == 0)
			CHECK(strlen(s) > 0);
		if (config_parse_netmask(s, &m) == 0)
			CHECK(m.family == AF_INET || m.family == AF_INET6);
	}
	return 0;
}
