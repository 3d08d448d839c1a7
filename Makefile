# tern - build, run and test.
#   make          build build/tern (installs missing Debian packages first)
#   make run      run tern in the foreground on etc/dev/tern.conf (port 2525, ./var)
#   make test     unit tests, integration tests, and the integration tests again
#                 under AddressSanitizer + UndefinedBehaviorSanitizer
#   make install  binary, config example, docs and systemd unit (PREFIX, DESTDIR)

CC      ?= gcc
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
PYTHON  ?= /usr/bin/python3

WARN     = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter
CPPFLAGS = -Isrc -D_GNU_SOURCE
CFLAGS   = -std=gnu11 -O2 -g -fno-strict-aliasing $(WARN)
# evaluated when a recipe runs, i.e. after deps.sh has installed pkg-config files
PKG_LIBS = $(shell pkg-config --libs libuv libunbound openssl libseccomp libpcre2-8 hiredis libpsl libidn2 zlib libcurl libmicrohttpd jansson) -lcrypt -lpthread
ASAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS      := $(shell find src -name '*.c' ! -name main.c | sort)
OBJS      := $(SRCS:%.c=build/obj/%.o)
ASAN_OBJS := $(SRCS:%.c=build/asan/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build/fuzz/%)
FUZZ_TIME ?= 30

.PHONY: lint layercheck all deps run test unit integration integration-asan asan install clean check-config fuzz bench

all: build/tern

build/.deps-ok: scripts/deps.sh
	@mkdir -p build
	@sh scripts/deps.sh
	@touch $@

deps: build/.deps-ok

build/obj/%.o: %.c | build/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

build/asan/obj/%.o: %.c | build/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(ASAN) -O1 -MMD -MP -c -o $@ $<

# the status page's HTML is assembled into control/status.o (.incbin)
build/obj/src/control/status.o build/asan/obj/src/control/status.o build/fuzzobj/src/control/status.o: src/control/status/page.html

build/tern: $(OBJS) build/obj/src/main.o
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/asan/tern: $(ASAN_OBJS) build/asan/obj/src/main.o
	$(CC) $(CFLAGS) $(ASAN) -o $@ $^ $(PKG_LIBS)

asan: build/asan/tern

build/tests/%: tests/unit/%.c $(OBJS)
	@mkdir -p build/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(OBJS) $(PKG_LIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# the integration tests run on TEST_JOBS pytest-xdist workers (most of a
# test's time is waiting on daemons, so 2 workers on 2 cores roughly halve
# the wall time); TEST_JOBS=0 runs them one after another in one process
TEST_JOBS ?= 2
PYTEST    = $(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS)

integration: build/tern
	TERN_BIN=$(CURDIR)/build/tern $(PYTEST) tests/integration

integration-asan: build/asan/tern
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	TERN_BIN=$(CURDIR)/build/asan/tern TERN_ASAN=1 $(PYTEST) tests/integration

test: unit integration integration-asan

# libFuzzer targets (clang), each run for FUZZ_TIME seconds; new inputs go to
# build/fuzz-corpus/NAME, the checked-in seeds in fuzz/corpus/NAME are read.
# The sources are compiled once, instrumented, in fuzzing mode (checksums
# that would stop mutated input early are relaxed: FUZZING_BUILD_MODE...).
FUZZ_FLAGS = -g -O1 -fno-sanitize-recover=undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJS := $(SRCS:%.c=build/fuzzobj/%.o)
.SECONDARY: $(FUZZ_OBJS)

build/fuzzobj/%.o: %.c | build/.deps-ok
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

build/fuzz/%: fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p build/fuzz
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined $< $(FUZZ_OBJS) -o $@ $(PKG_LIBS)

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$${f#build/fuzz/fuzz_}; \
		mkdir -p build/fuzz-corpus/$$n fuzz/corpus/$$n; \
		echo "== fuzz $$n ($(FUZZ_TIME) s)"; \
		if ! $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 build/fuzz-corpus/$$n \
			fuzz/corpus/$$n > build/fuzz/$$n.log 2>&1; then tail -40 build/fuzz/$$n.log; exit 1; fi; \
		grep -E 'stat::number_of_executed_units' build/fuzz/$$n.log; done

# crash-consistency soak (issue 6): 10,000 messages and 100 SIGKILLs at random
# moments, to Maildirs and through a relayhost; prints messages acked,
# delivered, duplicates, kills, time (figures in docs/security.md).
# SOAK_ARGS="--messages 2000 --kills 20 --mode local" for a shorter run.
.PHONY: soak
soak: build/tern
	TERN_BIN=$(CURDIR)/build/tern $(PYTHON) tests/soak/soak.py $(SOAK_ARGS)

# tern against Postfix and this machine's ceilings (as root: installs postfix
# on demand); QUICK=1 for ~2 minutes, BENCH_WORKLOADS=4k-c100-r1,idle to pick,
# BENCH_RUNS=N; results in bench/results/latest.{md,json}, see docs/PERFORMANCE.md
bench:
	-$(MAKE) build/tern
	QUICK=$(QUICK) TERN_BIN=$(CURDIR)/build/tern $(PYTHON) bench/bench.py

# static analysis; CI fails on any upward include (layercheck), cppcheck or
# clang-tidy finding. clang-tidy reads its checks from .clang-tidy (why each:
# docs/security.md) and runs on every src/**/*.c, TIDY_JOBS at a time,
# largest first; it prints nothing for a clean file, and a file's findings
# (as errors) otherwise.
TIDY_JOBS  ?= 2
TIDY_FLAGS  = -std=gnu11 $(CPPFLAGS) \
	$(foreach p,libuv libunbound openssl libpcre2-8,$(shell pkg-config --cflags $(p) 2>/dev/null))
# the layers (README.md "Layout"): no #include in src/ may run upward
layercheck:
	$(PYTHON) scripts/layercheck.py src

lint: layercheck | build/.deps-ok
	cppcheck --quiet --enable=warning,performance,portability --inline-suppr --std=c11 \
		-D_GNU_SOURCE -Isrc --suppress=missingIncludeSystem --error-exitcode=1 src
	@ls -S $$(find src -name '*.c') | xargs -P$(TIDY_JOBS) -n1 sh -c \
		'out=$$(clang-tidy --quiet "$$1" -- $(TIDY_FLAGS) 2>&1) && exit 0; \
		printf "%s\n" "$$out" | grep -v " generated\.$$"; exit 1' clang-tidy \
		|| { echo "lint: clang-tidy found problems (see above)" >&2; exit 1; }

run: build/tern
	@scripts/dev-run.sh

check-config: build/tern
	@scripts/dev-run.sh token
	./build/tern -c etc/dev/tern.conf check-config

install: build/tern
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(SYSCONFDIR)/tern \
		$(DESTDIR)$(PREFIX)/share/doc/tern $(DESTDIR)/lib/systemd/system
	install -m 0755 build/tern $(DESTDIR)$(PREFIX)/sbin/tern
	# tern called as sendmail is the local submission command (docs/sendmail.md);
	# a sendmail that is already there is left alone
	[ -e $(DESTDIR)$(PREFIX)/sbin/sendmail ] || ln -s tern $(DESTDIR)$(PREFIX)/sbin/sendmail
	# and as mailq (docs/queue-tools.md) and newaliases (a no-op scripts call),
	# in bin/ where users look for mailq; existing ones are left alone too
	install -d $(DESTDIR)$(PREFIX)/bin
	[ -e $(DESTDIR)$(PREFIX)/bin/mailq ] || ln -s ../sbin/tern $(DESTDIR)$(PREFIX)/bin/mailq
	[ -e $(DESTDIR)$(PREFIX)/bin/newaliases ] || ln -s ../sbin/tern $(DESTDIR)$(PREFIX)/bin/newaliases
	for f in tern.conf mailboxes aliases virtual; do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/tern/$$f ] || install -m 0644 etc/$$f $(DESTDIR)$(SYSCONFDIR)/tern/$$f; done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/tern/
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' etc/tern.service \
		> $(DESTDIR)/lib/systemd/system/tern.service
	# tern refuses to deliver as root: the system account it runs as
	# ("user = tern" in tern.conf), made on a real install only
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd tern >/dev/null; then \
		useradd --system --user-group --home-dir /var/spool/tern --no-create-home \
			--shell /usr/sbin/nologin tern; fi

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) build/obj/src/main.d build/asan/obj/src/main.d $(FUZZ_OBJS:.o=.d)
