/*
 * dkim.h (cli) - `tern dkim keygen|sign|verify`: DKIM keys and signatures
 * for administrators and tests, with the daemon's own code
 * (src/mailauth/dkim.h); docs/dkim.md.
 *
 *   keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--dir DIR]
 *       writes DIR/SELECTOR.DOMAIN.key (PKCS#8 PEM, mode 0600, never over an
 *       existing file; run as root: owned by tern's user, the config's
 *       "user") and prints the TXT record to publish at
 *       SELECTOR._domainkey.DOMAIN, in strings of at most 255 octets.
 *   sign --key FILE --domain D --selector S [--time T] < message
 *       prints the message with a DKIM-Signature on top.
 *   verify [--dns-servers "IP[@PORT] ..."] [--time T] < message
 *       one line per signature: RESULT d= s= a= (reason).
 *   arc-verify [--dns-servers ...] < message
 *       the ARC chain (RFC 8617): RESULT i=N (reason).
 *   arc-seal --key FILE --domain D --selector S (--authres TEXT | --authserv-id ID)
 *       [--dns-servers ...] [--time T] < message
 *       verifies the chain, then prints the message with our ARC set on top.
 * Exit status: 0 done / at least one signature (the ARC chain) passes;
 * 1 failure / none passes; 2 usage.
 */
#ifndef TERN_CLI_DKIM_H
#define TERN_CLI_DKIM_H

/* argv[0] is "dkim" */
int cli_dkim(const char *config, int argc, char **argv);

#endif
