#!/bin/sh
# Debian's nginx, wrk and curl for the benchmark, when they are missing (as root, with apt-get).
# Without them the harness still runs, with fallbacks it names in the report: the Python upstream
# serves the static files (no nginx), small GETs come from its asyncio generator (no wrk), and
# downloads and uploads are skipped (no curl).
set -u
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: not installed:$missing (needs root and apt-get); the harness falls back without them" >&2
    exit 0
fi
# Keep the package scripts from starting a system-wide nginx on port 80 (Debian's policy-rc.d hook).
made_policy=""
cleanup() { [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d; }
trap cleanup EXIT INT TERM
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
fi
echo "bench: apt-get install$missing"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; }; then
    echo "bench: apt-get could not install:$missing; the harness falls back without them" >&2
fi
exit 0
