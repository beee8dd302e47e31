#!/bin/sh
# Runs the three instances of contrib/cluster (uk, fr, de) on loopback, mails
# +33477858589@sms to uk, and shows it forwarded to fr and sent by fr's modem.
# Run from anywhere; data goes to data/{uk,fr,de} in the repository. Ctrl-C stops all.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/smsgw
for name in uk fr de; do
    mkdir -p "data/$name"
    for other in uk fr de; do
        [ "$name" = "$other" ] && continue
        echo "$other-cluster-secret" | "$bin" user add "$other" --config "contrib/cluster/$name.toml" >/dev/null
    done
done
pids=""
for name in uk fr de; do
    "$bin" serve --config "contrib/cluster/$name.toml" 2>"data/$name/log" &
    pids="$pids $!"
done
trap 'kill $pids 2>/dev/null; wait' EXIT
trap 'exit 130' INT TERM
# Each instance is ready once it sees its two peers up.
for name in uk fr de; do
    until [ "$(grep -c 'peer up' "data/$name/log" 2>/dev/null)" -ge 2 ]; do sleep 0.2; done
done
echo "== uk's routing table for +33477858589"
"$bin" route explain +33477858589 --config contrib/cluster/uk.toml
printf 'Subject: Hello\r\n\r\nSent through the cluster\r\n' >data/cluster-mail.txt
curl -s smtp://127.0.0.1:2601 --mail-from me@example.com --mail-rcpt +33477858589@sms -T data/cluster-mail.txt
until "$bin" queue list --state delivered --config contrib/cluster/fr.toml | grep -q 33477858589; do sleep 0.2; done
echo "== uk: the request, forwarded"
"$bin" queue list --config contrib/cluster/uk.toml
echo "== fr: the same request, sent and delivered by fr-sim0"
"$bin" queue list --config contrib/cluster/fr.toml
tail -n 1 data/fr/sim-fr-sim0.jsonl
