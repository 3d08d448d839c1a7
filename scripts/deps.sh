#!/bin/sh
# Installs what tern needs to build and test, from Debian 12 packages.
# make calls this when a dependency is missing; it is safe to run again.
# Without root it prints the apt-get line to run instead of running it.
set -eu

PKGS="gcc make pkg-config libuv1-dev libssl-dev libunbound-dev libcmocka-dev \
libcrypt-dev python3 python3-pytest python3-pytest-xdist python3-aiosmtpd python3-dnslib python3-yaml swaks openssl \
clang libclang-rt-14-dev cppcheck clang-tidy valgrind iproute2 procps dovecot-core dovecot-lmtpd libseccomp-dev \
clamav-daemon clamav-milter rspamd opendkim python3-dkim python3-nacl libpcre2-dev redis-server libhiredis-dev \
libpsl-dev libidn2-dev publicsuffix python3-authres nsd ldnsutils dns-root-data python3-cryptography \
spamass-milter spamd spamassassin postsrsd python3-spf zlib1g-dev libcurl4-openssl-dev \
libjansson-dev libmicrohttpd-dev python3-jsonschema prometheus chromium python3-websocket python3-lxml"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO=sudo
	else
		echo "deps: run as root: apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# redis-server's postinst starts its service: a policy-rc.d answering 101
# (when there is none) keeps it from starting during the install
rcd=
if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$SUDO" ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && rcd=1
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ -n "$rcd" ] && rm -f /usr/sbin/policy-rc.d
echo "deps: installed:$missing" >&2
# the LMTP tests run a private Dovecot (tests/integration/test_lmtp.py); the
# system service the package may have started is not wanted
case " $missing " in *" dovecot-core "*)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/dovecot ]; then
		$SUDO /etc/init.d/dovecot stop >/dev/null 2>&1 || true
	fi ;;
esac
# the milter tests (tests/integration/test_milter.py) run their own clamd,
# clamav-milter, rspamd, opendkim, spamd and spamass-milter in the test's directory: no system
# service (nor freshclam's downloads) is wanted
# the rate-limit tests (tests/integration/test_ratelimit.py) start their own
# redis-server on a private port: the system one is not wanted either; the
# DANE tests (tests/integration/test_dane.py) run their own nsd in a network
# namespace, and tests/integration/test_srs.py its own postsrsd (to check
# interoperation)
# the metrics tests (tests/integration/test_metrics.py) run their own prometheus
for svc in clamav-daemon clamav-freshclam clamav-milter rspamd opendkim redis-server nsd spamd spamass-milter postsrsd prometheus; do
	case " $missing " in *" $svc "*|*" clamav-daemon "*)
		if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
			$SUDO systemctl disable --now "$svc.service" "$svc.socket" >/dev/null 2>&1 || true
		elif [ -x "/etc/init.d/$svc" ]; then
			$SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
		fi ;;
	esac
done
