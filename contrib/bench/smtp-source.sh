#!/usr/bin/env bash
# Intake measured with Postfix's own load generator, as the Postfix yardstick is:
#   smtp-source -s 64 -m 20000 -l 1024 (64 sessions, 20,000 mails of 1 KiB, one connection each)
# against a release gateway with a fresh fsync'ed store. Needs the Debian package postfix
# (for /usr/sbin/smtp-source); run from the project root:
#   contrib/bench/smtp-source.sh [mails] [sessions]
set -euo pipefail
mails=${1:-20000}
sessions=${2:-64}
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-source >/dev/null || { echo "smtp-source not found: apt-get install postfix" >&2; exit 1; }
cargo build --release -q
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
cat >"$dir/smsgw.toml" <<TOML
[instance]
data_dir = "$dir/data"
[smtp]
listen = ["127.0.0.1:2626"]
max_connections = 1024
[security]
per_minute = 0              # the load comes from one address: no rate limits
per_day = 0
numbers_per_day = 0
TOML
RUST_LOG=warn target/release/smsgw serve --config "$dir/smsgw.toml" 2>"$dir/log" & pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/2626) 2>/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
smtp-source -s "$sessions" -m "$mails" -l 1024 -f bench@example.com -t +33477858589@sms 127.0.0.1:2626
end=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
kill -9 $pid; wait $pid 2>/dev/null || true
stored=$(target/release/smsgw queue list --json --config "$dir/smsgw.toml" | grep -c '"id"')
echo "$mails mails, $sessions sessions: $(echo "$mails / ($end - $start)" | bc) mails/s; gateway peak RSS ${peak} MiB; stored after SIGKILL: $stored"
