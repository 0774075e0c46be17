#!/usr/bin/env bash
# Interleaved A/B runs of weir-bench builds, for changes smaller than the run-to-run noise
# (+-15 % on a 2-core VM): runs every command once per round, round after round, and prints
# each command's median and sorted events/s.
#
# usage: bench/ab.sh WORKLOAD PARALLELISM ROUNDS CMD [CMD ...]
#   CMD   a weir-bench binary, or a script that execs one (e.g. with an environment setting);
#         it is called as `CMD WORKLOAD EVENTS PARALLELISM`
# env:   EVENTS  events per run (default 20000000)
#        PIN     pin task threads once they exist (Linux, needs taskset):
#                  spread  source task i and the i-th other task share CPU i mod ncpu
#                  split   every source task on CPU 0, every other task on CPU 1
#                The two placements bound what the scheduler may pick for a job with as many
#                tasks as there are cores times two (bench/RESULTS.md, W4 at p=2).
#        PROBE   a weir-bench binary: before each run, `PROBE --cross-core-probe` measures the
#                round trip of a cache line between CPUs 0 and 1, and the medians are also
#                printed per state: fast (below 150 ns) and slow (the VM's other state, where
#                jobs that hand records between cores run slower; bench/RESULTS.md)
#
# example: cp "$CARGO_TARGET_DIR/release/weir-bench" /tmp/before   # then change, rebuild
#          bench/ab.sh W4 2 8 /tmp/before "$CARGO_TARGET_DIR/release/weir-bench"
set -euo pipefail

if [ "$#" -lt 4 ]; then
  sed -n '2,19p' "$0" >&2
  exit 2
fi
W="$1"; P="$2"; ROUNDS="$3"; shift 3
EVENTS="${EVENTS:-20000000}"
PIN="${PIN:-}"
PROBE="${PROBE:-}"
case "$PIN" in ""|spread|split) ;; *) echo "ab: PIN must be spread or split" >&2; exit 2;; esac

# Pins the task threads of process $1 by their names (tasks are named after their chain).
pin() {
  local pid="$1" ncpu i=0 j=0 tid name cpu
  ncpu="$(nproc)"
  for _ in $(seq 1 100); do
    if ps -L -o comm= -p "$pid" 2>/dev/null | grep -q '^Source'; then break; fi
    sleep 0.01
  done
  sleep 0.05
  while read -r tid name; do
    [ "$tid" = "$pid" ] && continue
    case "$name" in
      Source*) if [ "$PIN" = split ]; then cpu=0; else cpu=$((i % ncpu)); fi; i=$((i + 1)) ;;
      jobmaster*|weir-ckpt-io*) continue ;;
      *) if [ "$PIN" = split ]; then cpu=$((1 % ncpu)); else cpu=$((j % ncpu)); fi; j=$((j + 1)) ;;
    esac
    taskset -p -c "$cpu" "$tid" >/dev/null 2>&1 || true
  done < <(ps -L -o tid=,comm= -p "$pid" 2>/dev/null)
}

run_once() {
  local cmd="$1" out pid
  out="$(mktemp)"
  "$cmd" "$W" "$EVENTS" "$P" >"$out" 2>/dev/null &
  pid=$!
  if [ -n "$PIN" ]; then pin "$pid"; fi
  if wait "$pid"; then
    sed -nE 's/.*events_per_sec=([0-9]+).*/\1/p' "$out"
  else
    echo "ab: $cmd $W $EVENTS $P failed" >&2
  fi
  rm -f "$out"
}

RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for cmd in "$@"; do
    state=all
    if [ -n "$PROBE" ]; then
      ns="$("$PROBE" --cross-core-probe 2>/dev/null | sed -nE 's/^xcore_ns=([0-9]+).*/\1/p')"
      if [ -z "$ns" ]; then state=unknown; elif [ "$ns" -lt 150 ]; then state=fast; else state=slow; fi
    fi
    v="$(run_once "$cmd")"
    [ -n "$v" ] && printf '%s\t%s\t%s\n' "$cmd" "$v" "$state" >>"$RESULTS"
    echo "ab: round $r/$ROUNDS $cmd ${v:-failed}${PROBE:+ ($state, ${ns:-?} ns)}" >&2
  done
done
# Prints the median and the sorted figures of `cmd`'s runs in state $2 ("" for all runs).
summary() {
  awk -F'\t' -v c="$1" -v s="$2" '$1 == c && (s == "" || $3 == s) { print $2 / 1e6 }' "$RESULTS" | sort -n |
    awk -v c="$1" -v s="${2:+ ($2)}" '{ x[NR] = $1 } END {
      if (NR == 0) { if (s == "") printf "%s: no successful runs\n", c; exit }
      printf "%s%s: median %.2f M events/s over %d runs [", c, s, x[int((NR + 1) / 2)], NR
      for (i = 1; i <= NR; i++) printf "%s%.2f", (i > 1 ? " " : ""), x[i]
      print "]" }'
}
for cmd in "$@"; do
  summary "$cmd" ""
  if [ -n "$PROBE" ]; then summary "$cmd" fast; summary "$cmd" slow; fi
done
