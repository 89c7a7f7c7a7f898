#!/usr/bin/env bash
# Runs F1 and F2 through the engine and through Benthos, alternating, on
# this machine, against the same emulators and driven by the same load
# generator (wrk), so that the two are compared in the same hour.
#
#   bench/compare/compare.sh [-n RUNS] [-s SECONDS] [-r ROWS] [-o engine|benthos] [f1] [f2]
#
# -o runs one of the two only; ENGINE=path runs that engine binary instead
# of building this checkout (to compare two commits, say).
#
# Needs wrk and time (apt-get install wrk time), python3 and Go; builds the engine from
# this checkout and Benthos v4.60.0 (MIT) from the Go module proxy into a
# temporary folder. The inbox goes under DATA (default: a temporary
# folder; keep it on a disk, as fsync on tmpfs costs nothing).
#
# The emulators listen on 127.0.0.1:SANDBOX_PORT (default 18081), the engine
# or Benthos on 127.0.0.1:LISTEN_PORT (default 18090); set them when those
# ports are taken. A process that does not answer within READY_TIMEOUT
# seconds (default 60), or exits first, stops the script with its log.
set -euo pipefail
runs=3 secs=10 rows=100000 only="engine benthos"
while getopts n:s:r:o: opt; do
  case $opt in
    n) runs=$OPTARG ;; s) secs=$OPTARG ;; r) rows=$OPTARG ;;
    o) [ "$OPTARG" = engine ] || [ "$OPTARG" = benthos ] || { echo "-o takes engine or benthos" >&2; exit 2; }
       only=$OPTARG ;;
    *) echo "usage: $0 [-n RUNS] [-s SECONDS] [-r ROWS] [-o engine|benthos] [f1] [f2]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
scenarios=${*:-f1 f2}
for need in wrk python3 go curl /usr/bin/time; do
  command -v $need >/dev/null || { echo "compare.sh needs $need (apt-get install wrk time)" >&2; exit 2; }
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
data=${DATA:-$tmp/data}
users=200000
sandbox_addr=127.0.0.1:${SANDBOX_PORT:-18081}
listen=127.0.0.1:${LISTEN_PORT:-18090}
export SANDBOX=http://$sandbox_addr LISTEN=$listen
# The pipelines folder also holds F3 and F4, which need these to load.
export SESSIONM_WEBHOOK_TOKEN=unused WALLET_TOKEN=unused

if [ -n "${ENGINE:-}" ]; then # a build to measure, such as another commit's
  cp "$ENGINE" "$tmp/engine"
else
  echo "building the engine ..." >&2
  (cd "$root" && go build -o "$tmp/engine" ./cmd/engine)
fi
# The module proxy lists no versions of Benthos, so go install pkg@version
# is refused; a throwaway module that requires the exact version builds it.
if [[ $only == *benthos* ]]; then
  echo "building Benthos v4.60.0 ..." >&2
  mkdir "$tmp/benthos-build"
  (cd "$tmp/benthos-build" && go mod init benthos-build >/dev/null 2>&1 &&
    go get github.com/redpanda-data/benthos/v4/cmd/benthos@v4.60.0 2>/dev/null &&
    go build -o "$tmp/benthos" github.com/redpanda-data/benthos/v4/cmd/benthos)
fi

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user+sys, in clock ticks

# No admin listener: its default port, 127.0.0.1:8079, may be held by
# another engine on this machine, and the engine would then exit at
# start. An ENGINE from before --admin-addr has no listener to turn off.
admin=()
if "$tmp/engine" run --help 2>&1 | grep -q -- -admin-addr; then admin=(--admin-addr ""); fi

# wait_up waits until curl's arguments get an answer. It gives up, with
# the end of the log, when the process exits first (it could not listen,
# say) or after READY_TIMEOUT seconds (default 60), rather than waiting
# for ever.
# free stops the script when something already answers on the address:
# wait_up would take its answer for the process started after it.
free() { # host:port variable
  if curl -s -o /dev/null --max-time 2 "http://$1/"; then
    echo "compare.sh: something already listens on $1; set $2 to a free port" >&2
    exit 1
  fi
}

wait_up() { # pid log what curl-arguments...
  local pid=$1 log=$2 what=$3 deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
  shift 3
  until curl "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "compare.sh: $what exited before it was ready; the end of its log:" >&2
      tail -5 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "compare.sh: $what was not ready after ${READY_TIMEOUT:-60} s (raise READY_TIMEOUT if the machine is slow); the end of its log:" >&2
      tail -5 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

start_sandbox() {
  free "$sandbox_addr" SANDBOX_PORT
  "$tmp/engine" sandbox --addr "$sandbox_addr" --generated-users $users \
    --journal-size 400000 --env-out "$tmp/env" >"$tmp/sandbox.log" 2>&1 &
  sandbox=$!
  wait_up $sandbox "$tmp/sandbox.log" "engine sandbox on $sandbox_addr (SANDBOX_PORT)" -sf "$SANDBOX/_sandbox/requests?count=true"
}

stop() { kill "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }

# settle waits until the emulator's SessionM journal stops growing, and
# sets last to when it last grew.
settle() {
  local n prev=-1 q='path=/sessionm/core/*&method=POST&count=true'
  while :; do
    n=$(curl -s "$SANDBOX/_sandbox/requests?$q" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
    [ "$n" = "$prev" ] && break
    prev=$n last=$(date +%s.%N)
    sleep 0.2
  done
}

# report prints one run: the SessionM requests answered 2xx (read after
# the run, so reading them costs the run nothing), the rate from t0 to
# the last of them, and CPU seconds per 10,000.
report() { # scenario what t0 cpu-ticks extra
  SANDBOX=$SANDBOX python3 - "$@" "$last" "$(cpu "$sandbox")" "$sb0" "$(getconf CLK_TCK)" <<'PY'
import json, os, sys, urllib.request
scenario, what, t0, ticks, extra, last, sb1, sb0, hz = sys.argv[1:]
ok = other = since = 0
while True:
    url = os.environ["SANDBOX"] + "/_sandbox/requests?path=/sessionm/core/*&method=POST&fields=id,status&limit=50000&since=%d" % since
    page = json.load(urllib.request.urlopen(url))
    for r in page["requests"]:
        if 200 <= r["status"] < 300: ok += 1
        else: other += 1
    if not page["requests"]: break
    since = page["next_since"]
secs = float(last) - float(t0) - 0.2
per10k = lambda t: float(t) / float(hz) / max(ok, 1) * 1e4
print("%s %-7s %7d delivered %6.0f/s end to end  CPU per 10k %.2f s, emulator %.2f s  %s%s" % (
    scenario, what, ok, ok / secs, per10k(ticks), per10k(int(sb1) - int(sb0)), extra,
    "  (%d answered non-2xx)" % other if other else ""))
PY
}

f1() { # engine|benthos
  start_sandbox
  free "$listen" LISTEN_PORT
  local pid
  if [ "$1" = engine ]; then
    rm -rf "$data"; mkdir -p "$data"
    "$tmp/engine" run --addr "$listen" "${admin[@]}" --data "$data" --env-file "$tmp/env" --log-level warn \
      "$root/pipelines/" >"$tmp/engine.log" 2>&1 &
    pid=$!
    wait_up $pid "$tmp/engine.log" "engine run on $listen (LISTEN_PORT)" -sf "http://$listen/readyz"
  else
    "$tmp/benthos" -c "$here/f1-benthos.yaml" >"$tmp/benthos.log" 2>&1 &
    pid=$!
    wait_up $pid "$tmp/benthos.log" "Benthos on $listen (LISTEN_PORT)" -s -o /dev/null "http://$listen/"
  fi
  local cpu0 t0
  cpu0=$(cpu $pid) sb0=$(cpu $sandbox) t0=$(date +%s.%N)
  THREADS=2 USERS=$users AUTH="Basic $(printf sandbox-core-key:sandbox-core-secret | base64)" \
    wrk -t2 -c64 -d"${secs}s" --latency -s "$here/webhook.lua" "http://$listen" >"$tmp/wrk.out"
  settle
  local ticks=$(( $(cpu $pid) - cpu0 ))
  report f1 "$1" "$t0" "$ticks" "$(awk '/Requests\/sec/ {a = $2} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
    /Non-2xx/ {n = ", " $0} END {printf "accepted %.0f/s, latency p50 %s p99 %s%s", a, p50, p99, n}' "$tmp/wrk.out")"
  stop $pid $sandbox
}

f2() { # engine|benthos
  start_sandbox
  local csv=$tmp/segment.csv
  awk -v rows="$rows" 'BEGIN {
    print "Appboy ID,country,created_at,date_of_birth,email,user_id,first_name,last_name,gender,city,language,phone_number,random_bucket,timezone"
    for (i = 0; i < rows; i++)
      printf "%024x,ES,2024-03-02 10:15:00 UTC,1990-05-14,load-%06d@example.com,load-%06d,Ana,García,F,Madrid,es,+34600111222,%d,Europe/Madrid\n", i, i, i, i % 10000
  }' >"$csv"
  local t0
  sb0=$(cpu $sandbox) t0=$(date +%s.%N)
  # Both exit when done; time(1) reports the CPU they used.
  if [ "$1" = engine ]; then
    rm -rf "$data"; mkdir -p "$data"
    /usr/bin/time -o "$tmp/cpu" -f "%U %S" "$tmp/engine" run --addr 127.0.0.1:0 "${admin[@]}" --data "$data" \
      --env-file "$tmp/env" --log-level warn --csv "segment-csv-to-sessionm-tags=$csv" --until-done \
      "$root/pipelines/" >"$tmp/engine.log" 2>&1 || echo "engine exited with status $? in f2: $(tail -3 "$tmp/engine.log")" >&2
  else
    CSV=$csv /usr/bin/time -o "$tmp/cpu" -f "%U %S" "$tmp/benthos" -c "$here/f2-benthos.yaml" \
      >"$tmp/benthos.log" 2>&1 || echo "benthos exited with status $? in f2: $(tail -3 "$tmp/benthos.log")" >&2
  fi
  local ticks
  ticks=$(awk -v hz="$(getconf CLK_TCK)" 'END {printf "%d", ($1 + $2) * hz}' "$tmp/cpu")
  settle
  report f2 "$1" "$t0" "$ticks" "$rows rows"
  stop $sandbox
}

for _ in $(seq "$runs"); do
  for s in $scenarios; do
    for what in $only; do
      "$s" "$what"
    done
  done
done
