/*
 * spf.h (cli) - `tern spf IP DOMAIN-OR-SENDER [--helo NAME] ...`: the SPF
 * result (RFC 7208 check_host()) tern's own evaluator gives for a client
 * address and an identity, for administrators and for the RFC 7208 test
 * suite (tests/integration/test_spf_suite.py).
 *
 * Prints three lines: the result word (none, neutral, pass, fail, softfail,
 * temperror, permerror), "reason: " what decided it, "explanation: " the
 * expanded exp= text of a fail (empty otherwise). Exit status 0 whatever
 * the result, 1 when the configuration or the resolver cannot be set up,
 * 2 on a usage error. DNS: --dns-servers, else the configuration's
 * dns_servers (when a configuration file is there), else /etc/resolv.conf.
 */
#ifndef TERN_CLI_SPF_H
#define TERN_CLI_SPF_H

#include <stdbool.h>

/* argv[0] is "spf"; config_given: -c was on the command line (a missing
 * default configuration is then not an error) */
int cli_spf(const char *config, bool config_given, int argc, char **argv);

#endif
