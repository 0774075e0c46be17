//! Every window type against a brute-force model of Flink's semantics
//! (`../shared/semantics/windows.md`) on random out-of-order input with late events, at
//! parallelism 1 and 3.

#[path = "../examples/windows.rs"]
#[allow(dead_code)]
mod windows;

use clap::Parser;
use std::collections::BTreeMap;
use std::fmt::Write as _;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

#[derive(Clone, Debug)]
struct Win {
    start: i64,
    end: i64,
    count: i64,
    sum: i64,
}

/// The model: records in order, watermark after each, windows fire when the watermark
/// passes their end, late records fire again or go to the late output.
fn reference(
    records: &[(String, i64, i64)],
    kind: Kind,
    ooo: i64,
    lateness: i64,
) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut w = i64::MIN;
    let mut max_ts = i64::MIN;
    // Live windows per key.
    let mut live: BTreeMap<String, Vec<Win>> = BTreeMap::new();
    let line = |k: &str, x: &Win| format!("{k},{},{},{},{}", x.start, x.end, x.count, x.sum);
    for (k, ts, v) in records {
        let wins = live.entry(k.clone()).or_default();
        match kind {
            Kind::Tumbling(_) | Kind::Sliding(..) => {
                let assigned: Vec<(i64, i64)> = match kind {
                    Kind::Tumbling(size) => {
                        let s = ts - ts.rem_euclid(size);
                        vec![(s, s + size)]
                    }
                    Kind::Sliding(size, slide) => {
                        let mut v = Vec::new();
                        let mut s = ts - ts.rem_euclid(slide);
                        while s > ts - size {
                            v.push((s, s + size));
                            s -= slide;
                        }
                        v
                    }
                    Kind::Session(_) => unreachable!(),
                };
                let mut added = false;
                for (s, e) in assigned {
                    if e - 1 + lateness <= w {
                        continue;
                    }
                    added = true;
                    let idx = match wins.iter().position(|x| x.start == s && x.end == e) {
                        Some(i) => i,
                        None => {
                            wins.push(Win {
                                start: s,
                                end: e,
                                count: 0,
                                sum: 0,
                            });
                            wins.len() - 1
                        }
                    };
                    let x = &mut wins[idx];
                    x.count += 1;
                    x.sum = x.sum.wrapping_add(*v);
                    if e - 1 <= w {
                        out.push(line(k, x));
                    }
                }
                if !added && ts + lateness <= w {
                    late.push(format!("{k},{ts},{v}"));
                }
            }
            Kind::Session(gap) => {
                let own = Win {
                    start: *ts,
                    end: ts + gap,
                    count: 1,
                    sum: *v,
                };
                let (touching, rest): (Vec<Win>, Vec<Win>) = std::mem::take(wins)
                    .into_iter()
                    .partition(|x| x.start <= own.end && x.end >= own.start);
                *wins = rest;
                if touching.is_empty() && own.end - 1 + lateness <= w {
                    late.push(format!("{k},{ts},{v}"));
                } else {
                    let mut m = own;
                    for t in touching {
                        m.start = m.start.min(t.start);
                        m.end = m.end.max(t.end);
                        m.count += t.count;
                        m.sum = m.sum.wrapping_add(t.sum);
                    }
                    // Merging can bridge to further sessions only through the new cover; repeat.
                    loop {
                        let (more, rest): (Vec<Win>, Vec<Win>) = std::mem::take(wins)
                            .into_iter()
                            .partition(|x| x.start <= m.end && x.end >= m.start);
                        *wins = rest;
                        if more.is_empty() {
                            break;
                        }
                        for t in more {
                            m.start = m.start.min(t.start);
                            m.end = m.end.max(t.end);
                            m.count += t.count;
                            m.sum = m.sum.wrapping_add(t.sum);
                        }
                    }
                    if m.end - 1 <= w {
                        out.push(line(k, &m));
                    }
                    wins.push(m);
                }
            }
        }
        max_ts = max_ts.max(*ts);
        let nw = w.max(max_ts - ooo - 1);
        if nw > w {
            for (key, wins) in live.iter_mut() {
                for x in wins.iter() {
                    if x.end - 1 > w && x.end - 1 <= nw {
                        out.push(line(key, x));
                    }
                }
                wins.retain(|x| x.end - 1 + lateness > nw);
            }
            w = nw;
        }
    }
    for (key, wins) in &live {
        for x in wins {
            if x.end - 1 > w {
                out.push(line(key, x));
            }
        }
    }
    out.sort();
    (out, late)
}

fn run_case(seed: u64, kind: Kind, parallelism: i64, explicit_trigger: bool) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 200 + rng.below(300) as usize;
    let keys = 1 + rng.below(5);
    let ooo = rng.below(20);
    let lateness = [0, 0, 5, 30][rng.below(4) as usize];
    let mut t = rng.below(50) - 25;
    let mut records = Vec::new();
    for _ in 0..n {
        t += rng.below(8);
        let ts = match rng.below(10) {
            0 => t - rng.below(80),
            1 | 2 => t - rng.below(15),
            _ => t,
        };
        records.push((
            format!("k{}", rng.below(keys as u64)),
            ts,
            rng.below(2001) - 1000,
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut csv = String::new();
    for (k, ts, v) in &records {
        writeln!(csv, "{k},{ts},{v}").unwrap();
    }
    std::fs::write(&input, csv).unwrap();
    let spec = match kind {
        Kind::Tumbling(s) => format!("tumbling:{s}"),
        Kind::Sliding(s, l) => format!("sliding:{s}:{l}"),
        Kind::Session(g) => format!("session:{g}"),
    };
    let out = dir.path().join("out.csv");
    let late = dir.path().join("late.csv");
    let args = windows::Args::try_parse_from(
        [
            "windows".to_string(),
            "--input".into(),
            input.display().to_string(),
            "--output".into(),
            out.display().to_string(),
            "--late-output".into(),
            late.display().to_string(),
            "--window".into(),
            spec.clone(),
            "--out-of-orderness".into(),
            ooo.to_string(),
            "--allowed-lateness".into(),
            lateness.to_string(),
            "--parallelism".into(),
            parallelism.to_string(),
        ]
        .into_iter()
        .chain(explicit_trigger.then(|| "--explicit-trigger".to_string())),
    )
    .unwrap();
    windows::run(&args).unwrap();
    let (mut want_out, mut want_late) = reference(&records, kind, ooo, lateness);
    let read = |p: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    want_out.sort();
    want_late.sort();
    let ctx =
        format!("seed {seed}, {spec}, ooo {ooo}, lateness {lateness}, parallelism {parallelism}");
    assert_eq!(read(&out), want_out, "firings differ: {ctx}");
    assert_eq!(read(&late), want_late, "late records differ: {ctx}");
}

#[test]
fn tumbling_windows_match_the_model() {
    for seed in 0..12 {
        for p in [1, 3] {
            for explicit in [false, true] {
                run_case(seed, Kind::Tumbling(5 + (seed as i64 % 4) * 7), p, explicit);
            }
        }
    }
}

#[test]
fn sliding_windows_match_the_model() {
    for seed in 0..12 {
        let (size, slide) = [(10, 5), (15, 4), (5, 10), (12, 12)][seed as usize % 4];
        for p in [1, 3] {
            for explicit in [false, true] {
                run_case(100 + seed, Kind::Sliding(size, slide), p, explicit);
            }
        }
    }
}

#[test]
fn session_windows_match_the_model() {
    for seed in 0..12 {
        for p in [1, 3] {
            run_case(200 + seed, Kind::Session(3 + seed as i64 % 6), p, true);
        }
    }
}
