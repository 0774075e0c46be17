#!/usr/bin/env bash
# Runs the shared workloads W0-W4 on Weir and on Apache Flink 2.3 (the anchor in
# ../shared/bench/flink), one after the other on this machine, plus the single-core limit
# loops, and writes a Markdown table of Weir/Flink throughput and memory ratios.
#
# usage: bench/compare.sh [EVENTS]            (default 20000000)
# env:   WEIR_SHARED_BENCH  the shared bench folder (default: <repo>/../shared/bench)
#        BENCH_WORKLOADS    subset, e.g. "W2 W3" (default "W0 W1 W2 W3 W4")
#        BENCH_PARS         parallelisms (default "1 2")
#        REPEATS            runs per engine and workload, alternating Weir and Flink (default 1)
#        REPEATS_W0 ..      the same for one workload (e.g. REPEATS_W4=3: more runs where the
#                           ratio is close to its target and a single run is too noisy)
#        REPEATS_CKPT       W2 / W2c pairs per checkpoint interval (default 3)
#        BENCH_HEAP         Flink's heap (default 1g, its leanest sane setting)
#        OUT                where the table goes (default bench/RESULTS.md)
#        SQL_WORKLOADS      the workloads also run as SQL, W0-sql..W3-sql against Flink SQL
#                           (default "W0 W1 W2 W3"; "" skips them); REPEATS_SQL runs each
#                           (default 1: Flink's W3-sql takes two minutes a run)
#        NEXMARK_QUERIES    Nexmark queries run on Weir alone (default "q0 q1 q2 q3 q4 q5 q7 q8";
#                           "" skips them); NEXMARK_EVENTS their events (default EVENTS)
#
# With W2 among the workloads, W2c (W2 with exactly-once checkpoints every 10 s, and every 1 s)
# runs too, for the cost of checkpointing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${WEIR_SHARED_BENCH:-$ROOT/../shared/bench}"
EVENTS="${1:-20000000}"
WORKLOADS="${BENCH_WORKLOADS:-W0 W1 W2 W3 W4}"
PARS="${BENCH_PARS:-1 2}"
REPEATS="${REPEATS:-1}"
OUT="${OUT:-$ROOT/bench/RESULTS.md}"
export BENCH_HEAP="${BENCH_HEAP:-1g}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"
LIMIT_TARGET="${LIMIT_TARGET:-$HOME/.cache/limit-target}"

[ -d "$SHARED" ] || { echo "compare: shared bench folder not found at $SHARED (set WEIR_SHARED_BENCH)" >&2; exit 2; }

echo "compare: building weir-bench and the limit loops" >&2
(cd "$ROOT" && cargo build --release -q -p weir-bench)
CARGO_TARGET_DIR="$LIMIT_TARGET" cargo build --release -q --manifest-path "$SHARED/limit/Cargo.toml"
WEIR="$CARGO_TARGET_DIR/release/weir-bench"
LIMIT="$(find "$LIMIT_TARGET/release" -maxdepth 1 -type f -executable -name '*limit*' | head -n1)"
"$SHARED/flink/setup.sh" >/dev/null

# The round trip of a cache line between CPUs 0 and 1 just before a run: on a VM it changes
# from minute to minute, and runs that hand records between cores slow down with it
# (crates/weir-bench/src/probe.rs).
xcore() { "$WEIR" --cross-core-probe 2>/dev/null || echo "xcore_ns=NA"; }
RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
for p in $PARS; do
  for w in $WORKLOADS; do
    reps_var="REPEATS_$w"
    for rep in $(seq 1 "${!reps_var:-$REPEATS}"); do
      echo "compare: $w p=$p run $rep: weir" >&2
      xc="$(xcore)"
      if line="$("$WEIR" "$w" "$EVENTS" "$p" 2>/dev/null)"; then echo "engine=weir $xc $line" >>"$RAW"; else echo "compare: weir $w p=$p failed" >&2; fi
      echo "compare: $w p=$p run $rep: flink" >&2
      xc="$(xcore)"
      # Two runs in one JVM: the second (warm, after JIT) is the one reported.
      if line="$("$SHARED/flink/run.sh" "$w-ds" "$EVENTS" "$p" 2 2>/dev/null | tail -n1)"; then echo "engine=flink $xc $line" >>"$RAW"; else echo "compare: flink $w p=$p failed" >&2; fi
    done
  done
done
for p in $PARS; do
  for w in ${SQL_WORKLOADS-W0 W1 W2 W3}; do
    for rep in $(seq 1 "${REPEATS_SQL:-1}"); do
      echo "compare: $w-sql p=$p run $rep: weir" >&2
      xc="$(xcore)"
      if line="$("$WEIR" "$w-sql" "$EVENTS" "$p" 2>/dev/null)"; then echo "engine=weir-sql $xc $line" >>"$RAW"; else echo "compare: weir $w-sql p=$p failed" >&2; fi
      echo "compare: $w-sql p=$p run $rep: flink" >&2
      xc="$(xcore)"
      if line="$("$SHARED/flink/run.sh" "$w-sql" "$EVENTS" "$p" 2 2>/dev/null | tail -n1)"; then echo "engine=flink-sql $xc $line" >>"$RAW"; else echo "compare: flink $w-sql p=$p failed" >&2; fi
    done
  done
done
if [[ " $WORKLOADS " == *" W2 "* ]]; then
  # Each W2c run is paired with a W2 run right before it, so that the ratio compares runs
  # on the same machine state (not a W2 figure from minutes earlier, next to a Flink JVM).
  for p in $PARS; do
    for interval in 10000 1000; do
      for rep in $(seq 1 "${REPEATS_CKPT:-3}"); do
        echo "compare: W2 / W2c p=$p checkpoints every $interval ms, pair $rep" >&2
        if line="$("$WEIR" W2 "$EVENTS" "$p" 2>/dev/null)"; then
          echo "engine=weir-ckpt-base interval_ms=$interval $line" >>"$RAW"
        fi
        if line="$(WEIR_BENCH_CHECKPOINT_MS=$interval "$WEIR" W2c "$EVENTS" "$p" 2>/dev/null)"; then
          echo "engine=weir-ckpt interval_ms=$interval $line" >>"$RAW"
        fi
      done
    done
  done
fi
for q in ${NEXMARK_QUERIES-q0 q1 q2 q3 q4 q5 q7 q8}; do
  for p in $PARS; do
    echo "compare: nexmark $q p=$p" >&2
    if line="$("$WEIR" "$q" "${NEXMARK_EVENTS:-$EVENTS}" "$p" 2>/dev/null)"; then echo "engine=weir $line" >>"$RAW"; fi
  done
done
if [ -n "$LIMIT" ]; then
  for w in $WORKLOADS; do
    echo "compare: $w limit" >&2
    "$LIMIT" "$w" "$EVENTS" | sed 's/^/engine=limit /' >>"$RAW" || true
  done
fi

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
python3 - "$RAW" "$OUT" "$EVENTS" "$(nproc)" "$CPU" "$BENCH_HEAP" "$REPEATS" <<'PY'
import statistics, sys, datetime
raw, out, events, cores, cpu, heap, repeats = sys.argv[1:8]
# A cross-core round trip above this (ns) is the VM's slow state (bench/RESULTS.md).
SLOW_NS = 150
rows = []
for line in open(raw):
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    rows.append(kv)
def pick(engine, w, p):
    return [r for r in rows if r.get("engine") == engine and r["workload"].split("-")[0] == w and r.get("parallelism") == p]
def med(rs, key):
    vals = [float(r[key]) for r in rs if r.get(key) not in (None, "NA")]
    return statistics.median(vals) if vals else None
ws = sorted({r["workload"].split("-")[0] for r in rows if r.get("engine") == "weir" and not r["workload"].startswith("nexmark")})
ps = sorted({r["parallelism"] for r in rows if r.get("engine") == "weir"})
lines = []
lines.append(f"| workload | P | runs | Weir events/s | Flink events/s | throughput Weir/Flink | Weir peak RSS MB | Flink peak RSS MB | memory Weir/Flink | Weir / single-core limit | out_rows, checksum equal | runs after a slow probe (Weir + Flink) |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
def slow(rs):
    return sum(1 for r in rs if r.get("xcore_ns", "NA") != "NA" and float(r["xcore_ns"]) > SLOW_NS)
for w in ws:
    limit = pick("limit", w, "1")
    lim = med(limit, "events_per_sec")
    for p in ps:
        a, b = pick("weir", w, p), pick("flink", w, p)
        ae, be = med(a, "events_per_sec"), med(b, "events_per_sec")
        am, bm = med(a, "peak_rss_mb"), med(b, "peak_rss_mb")
        same = "yes" if a and b and all((x["out_rows"], x["checksum"]) == (b[0]["out_rows"], b[0]["checksum"]) for x in a + b) else "NO"
        f = lambda v: "-" if v is None else (f"{v/1e6:.2f} M" if v > 1e5 else f"{v:.0f}")
        ratio = f"{ae/be:.2f}x" if ae and be else "-"
        mratio = f"{am/bm:.3f}" if am and bm else "-"
        frac = f"{ae/lim:.0%}" if (p == "1" and ae and lim) else ""
        lines.append(f"| {w} | {p} | {len(a)} + {len(b)} | {f(ae)} | {f(be)} | {ratio} | {am if am is None else round(am)} | {bm if bm is None else round(bm)} | {mratio} | {frac} | {same} | {slow(a)} + {slow(b)} |")
sql = []
for w in sorted({r["workload"].split("-")[0] for r in rows if r.get("engine") == "weir-sql"}):
    for p in sorted({r["parallelism"] for r in rows if r.get("engine") == "weir-sql"}):
        a, b = pick("weir-sql", w, p), pick("flink-sql", w, p)
        ae, be = med(a, "events_per_sec"), med(b, "events_per_sec")
        am, bm = med(a, "peak_rss_mb"), med(b, "peak_rss_mb")
        same = "yes" if a and b and all((x["out_rows"], x["checksum"]) == (b[0]["out_rows"], b[0]["checksum"]) for x in a + b) else "NO"
        f = lambda v: "-" if v is None else f"{v/1e6:.2f} M"
        ratio = f"{ae/be:.2f}x" if ae and be else "-"
        mratio = f"{am/bm:.3f}" if am and bm else "-"
        sql.append(f"| {w}-sql | {p} | {len(a)} + {len(b)} | {f(ae)} | {f(be)} | {ratio} | {am if am is None else round(am)} | {bm if bm is None else round(bm)} | {mratio} | {same} |")
sql_table = ""
if sql:
    sql_table = "\n\nSQL (`weir-bench W-sql EVENTS P`: the workload's INSERT INTO through Weir's SQL layer; Flink: `run.sh W-sql EVENTS P 2`, Flink SQL's planner and runtime):\n\n| workload | P | runs | Weir events/s | Flink events/s | throughput Weir/Flink | Weir peak RSS MB | Flink peak RSS MB | memory Weir/Flink | out_rows, checksum equal |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(sql)
ck = []
for p in ps:
    for interval in ("10000", "1000"):
        pick_ck = lambda e: [r for r in rows if r.get("engine") == e and r.get("interval_ms") == interval and r.get("parallelism") == p]
        v, base = med(pick_ck("weir-ckpt"), "events_per_sec"), med(pick_ck("weir-ckpt-base"), "events_per_sec")
        if v and base:
            ck.append(f"| W2c | {p} | {int(interval)//1000} s | {len(pick_ck('weir-ckpt'))} | {v/1e6:.2f} M | {base/1e6:.2f} M | {v/base:.2f} |")
ck_table = ""
if ck:
    ck_table = "\n\nCheckpointing cost (exactly-once, heap backend, `weir-bench W2c`; `WEIR_BENCH_CHECKPOINT_MS` sets the interval):\n\n| workload | P | interval | pairs | events/s with checkpoints | W2 events/s (run just before each) | ratio |\n|---|---|---|---|---|---|---|\n" + "\n".join(ck)
nx = [r for r in rows if r.get("engine") == "weir" and r["workload"].startswith("nexmark")]
nx_table = ""
if nx:
    nx_lines = [f"| {r['workload'][8:]} | {r['parallelism']} | {r['events']} | {float(r['events_per_sec'])/1e6:.2f} M | {r['peak_rss_mb']} | {r['out_rows']} |" for r in nx]
    nx_table = "\n\nNexmark on Weir alone (`weir-bench qN EVENTS P`; the anchor has no Nexmark runner):\n\n| query | P | events | events/s | peak RSS MB | out_rows |\n|---|---|---|---|---|---|\n" + "\n".join(nx_lines)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
doc = f"""# Weir vs Apache Flink 2.3: the shared workloads

Measured {now} with `bench/compare.sh {events}` on this machine: {cores} cores ({cpu}).
Weir: `weir-bench W P` (release build, embedded mini-cluster). Flink: `../shared/bench/flink/run.sh W-ds EVENTS P 2`
(DataStream API, one JVM, `BENCH_HEAP={heap}`, the second, warm run of the JVM). Runs alternate Weir and Flink,
`runs` per engine (Weir + Flink); medians. Limit: the single-threaded loop of `../shared/bench/limit` (p = 1 only).
events/s = EVENTS / job seconds; peak RSS of the whole process. Before each run, `weir-bench --cross-core-probe`
measures the round trip of a cache line between the two CPUs (`xcore_ns` in the raw lines); on this VM it moves
between ~30, ~65 and ~330 ns from minute to minute, and the last column counts the runs that started above 150 ns,
where jobs that hand records between cores (W4) run slower.

{chr(10).join(lines)}{sql_table}{ck_table}{nx_table}

Raw lines:

```
{open(raw).read().rstrip()}
```
"""
open(out, "w").write(doc)
print(doc)
PY
