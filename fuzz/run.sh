#!/usr/bin/env bash
# Fuzz every target in ./fuzz for $FUZZTIME each (default 30s), one target
# at a time with two workers, and print "TARGET execs/s=N" per target
# (total execs / elapsed seconds from the fuzzer's last status line).
# Exits non-zero if any target crashed; a crasher is written by go test to
# fuzz/testdata/fuzz/TARGET/ and its path is printed.
#
# New interesting inputs are minimised for at most $FUZZMINIMIZETIME
# (default 5s, go test's default is 60s): the fuzzer pauses all workers
# while it minimises, which for the differential target (~0.2 ms per exec)
# could otherwise eat most of a short run.
#
#   FUZZTIME=5s fuzz/run.sh              # all targets
#   FUZZTIME=1m fuzz/run.sh FuzzResize   # selected targets
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
fuzztime=${FUZZTIME:-30s}
minimizetime=${FUZZMINIMIZETIME:-5s}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/gauntlet-fuzz.XXXXXX")

if [ "$#" -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(go test -list '^Fuzz' ./fuzz/ | grep '^Fuzz')
fi
if [ "${#targets[@]}" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 2
fi

failed=0
for t in "${targets[@]}"; do
	log="$logdir/$t.log"
	go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" -parallel 2 ./fuzz/ >"$log" 2>&1
	rc=$?
	# Last status line: "fuzz: elapsed: 1m3s, execs: 123456 (4115/sec), new interesting: ..."
	# (elapsed is a Go duration rounded to seconds: 45s, 1m3s, 1h0m5s).
	rate=$(grep -E '^fuzz: elapsed: [0-9hms]+, execs: [0-9]+ ' "$log" | tail -n 1 |
		sed -E 's/^fuzz: elapsed: ([0-9hms]+), execs: ([0-9]+) .*/\1 \2/' |
		awk '{
			d = $1; secs = 0
			if (match(d, /[0-9]+h/)) secs += 3600 * substr(d, RSTART, RLENGTH - 1)
			if (match(d, /[0-9]+m/)) secs += 60 * substr(d, RSTART, RLENGTH - 1)
			if (match(d, /[0-9]+s/)) secs += substr(d, RSTART, RLENGTH - 1)
			if (secs > 0) printf "%d", $2 / secs; else printf "%d", $2
		}')
	if [ "$rc" -eq 0 ]; then
		echo "$t execs/s=${rate:-0}"
	else
		failed=1
		echo "$t execs/s=${rate:-0} CRASHED (exit $rc, log $log)"
		grep -E 'Failing input written to|--- FAIL|panic:|_test.go:[0-9]+:' "$log" | head -n 20 | sed 's/^/    /'
	fi
done
[ "$failed" -eq 0 ] && rm -rf "$logdir"
exit "$failed"
