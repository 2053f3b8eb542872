#!/bin/sh
# make report-check: render an A/B report of incident 1 in Debian's
# chromium, headless, and check the screenshot is not blank. Needs root
# for apt-get when chromium is missing. Usage: report-check.sh BIN OUTDIR
set -eu
bin=$1 out=$2
if ! command -v chromium >/dev/null 2>&1; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
rm -rf "$out"
mkdir -p "$out"
"$bin" ab --scenario umount-status-lock --time-scale 0.01 --report "$out"
report=$(ls "$out"/*.html | head -n 1)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$profile" --window-size=1400,2400 \
	--screenshot="$out/report.png" "file://$(realpath "$report")" 2>/dev/null
echo "report: $report"
echo "screenshot: $out/report.png"
