#!/bin/sh
# dev-run.sh - what `make run` runs: tern on 127.0.0.1:2525 with the spool
# and the Maildirs under ./var (etc/dev/tern.conf), and the JSON API on
# 127.0.0.1:8025 with the token in var/http-token (made at the first start).
#
# Started by an ordinary user, tern runs as that user. Started by root, it
# binds its port, then runs as "nobody" (the `user` key of etc/dev/tern.conf):
# tern refuses to deliver mail as root. nobody must then be able to reach
# ./var; when the checkout sits under a directory only root may enter (a
# `mktemp -d` clone is mode 0700), ./var becomes a link to a directory under
# /var/tmp that nobody can reach, and tern follows it. The tables are read
# again by nobody at every reload, so then a copy of etc/dev goes there too
# (var/etc/, made afresh at each start from etc/dev) and tern runs on it.
set -e
cd "$(dirname "$0")/.."
# the HTTP API's bearer token (http_token_file in etc/dev/tern.conf): made
# once, 64 hex digits, mode 0600
make_token() {
	[ -s "$1" ] || (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$1")
}
# "dev-run.sh token": only that (make check-config)
if [ "${1:-}" = token ]; then
	mkdir -p var
	make_token var/http-token
	exit 0
fi
if [ "$(id -u)" = 0 ] && { [ ! -e var ] || [ -L var ]; } &&
	! runuser -u nobody -- test -x "$PWD" 2>/dev/null; then
	alt=/var/tmp/tern-dev-$(printf '%s' "$PWD" | sha1sum | cut -c1-12)
	mkdir -p "$alt"
	chmod 711 "$alt"
	ln -sfn "$alt" var
	echo "make run: user nobody cannot enter $PWD, so ./var links to $alt"
	rm -rf "$alt/etc"
	mkdir -m 755 "$alt/etc"
	cp etc/dev/mailboxes etc/dev/aliases etc/dev/virtual "$alt/etc/"
	sed "s|\.\./\.\./var|$alt|" etc/dev/tern.conf > "$alt/etc/tern.conf"
	chmod 644 "$alt/etc/"*
	echo "make run: and runs on a copy of etc/dev in $alt/etc (nobody re-reads the tables)"
	make_token "$alt/http-token"
	exec ./build/tern -c "$alt/etc/tern.conf" run
fi
mkdir -p var
make_token var/http-token
exec ./build/tern -c etc/dev/tern.conf run
