/*
 * version.h - tern's version, printed by `tern --version`, `sendmail
 * --version` and the start-up log line. The build may set it (-DTERN_VERSION).
 */
#ifndef TERN_VERSION_H
#define TERN_VERSION_H

#ifndef TERN_VERSION
#define TERN_VERSION "0.1"
#endif

#endif
