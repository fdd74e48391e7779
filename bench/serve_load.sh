#!/bin/sh
# Load test of `smdlm serve` on loopback: CLIENTS concurrent clients send REQUESTS requests in
# all (curl, each request its own seed), first against a server that batches (--parallel
# CLIENTS, continuous batching), then against one that serves one request at a time
# (--parallel 1 --no-batch), same requests. Checks that every request got exactly one answer
# (status 200, its own seed, distinct ids) and prints p50/p99 latency, throughput and the
# ratio. Usage:
#   sh bench/serve_load.sh [CLIENTS] [REQUESTS] [STEPS] [THREADS]
# (defaults 8, 400, 32 steps, 1 thread; models/default, canvas 128).
set -eu
cd "$(dirname "$0")/.."
clients=${1:-8}
requests=${2:-400}
steps=${3:-32}
threads=${4:-1}
bin=./build/smdlm
out=$(mktemp -d /tmp/smdlm-load-XXXXXX)
trap 'rm -rf "$out"' EXIT

# $1: a name; the rest: serve flags. Prints "name p50 p99 throughput".
run() {
    name=$1
    shift
    "$bin" serve -m models/default -t "$threads" --port 0 --queue "$requests" "$@" 2>"$out/$name.log" &
    pid=$!
    port=""
    while [ -z "$port" ]; do
        sleep 0.1
        port=$(sed -n 's/.* on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out/$name.log")
        kill -0 "$pid" 2>/dev/null || { cat "$out/$name.log" >&2; exit 1; }
    done
    mkdir "$out/$name"
    start=$(date +%s.%N)
    seq 1 "$requests" | xargs -P "$clients" -I{} curl -s -o "$out/$name/{}.json" \
        -w '{} %{http_code} %{time_total}\n' "http://127.0.0.1:$port/v1/completions" \
        -d "{\"prompt\":\"Request {}:\",\"steps\":$steps,\"seed\":{}}" >"$out/$name.times"
    end=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid"
    # exactly one answer per request: 200, its own seed, every id distinct
    answered=$(wc -l <"$out/$name.times")
    ok=$(awk '$2 == 200' "$out/$name.times" | wc -l)
    own=0
    for i in $(seq 1 "$requests"); do
        grep -q "\"seed\":$i," "$out/$name/$i.json" && own=$((own + 1))
    done
    ids=$(cat "$out/$name"/*.json | grep -o '"id":"cmpl-[0-9a-f]*"' | sort -u | wc -l)
    if [ "$answered" -ne "$requests" ] || [ "$ok" -ne "$requests" ] || [ "$own" -ne "$requests" ] ||
       [ "$ids" -ne "$requests" ]; then
        echo "$name: $answered answers, $ok with 200, $own with their own seed, $ids distinct ids of $requests" >&2
        exit 1
    fi
    sort -n -k3 "$out/$name.times" | awk -v n="$requests" -v t0="$start" -v t1="$end" -v name="$name" '
        { lat[NR] = $3 }
        END { p50 = lat[int((n - 1) * 0.50) + 1]; p99 = lat[int((n - 1) * 0.99) + 1];
              printf "%s %.3f %.3f %.2f\n", name, p50, p99, n / (t1 - t0) }'
}

echo "$clients clients, $requests requests, $steps steps, canvas 128, models/default, -t $threads"
batched=$(run batched --parallel "$clients")
single=$(run one-at-a-time --parallel 1 --no-batch)
printf '%-14s %8s %8s %12s\n' server "p50 s" "p99 s" "requests/s"
for line in "$batched" "$single"; do
    echo "$line" | awk '{ printf "%-14s %8.3f %8.3f %12.2f\n", $1, $2, $3, $4 }'
done
echo "$batched $single" | awk '{ printf "every request answered once; throughput batched / one at a time: %.2fx\n", $4 / $8 }'
