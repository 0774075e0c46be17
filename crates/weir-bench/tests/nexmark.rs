//! Each Nexmark query on small inputs, at parallelism 1 and 3, against a reference computed
//! here directly from the generator's events. The generator runs at 250 events/s of event
//! time, so the inputs span tens of windows and auctions expire inside the stream.

use std::collections::{BTreeMap, HashMap, HashSet};
use weir_bench::nexmark::{self, to_euros, HOP_SLIDE_MS, WINDOW_MS};
use weir_connectors::nexmark::{generate, Event, GeneratorSplit, NexmarkConfig};

/// Every event of a run with `p` generators (event times depend on `p`).
const RATE: u64 = 250;

fn events(n: u64, p: u64) -> Vec<Event> {
    let cfg = NexmarkConfig::new(n).with_rate(RATE);
    GeneratorSplit::split(&cfg, p)
        .iter()
        .flat_map(|g| {
            (0..g.count)
                .map(|i| generate(&cfg, g, i))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn reference(query: &str, ev: &[Event]) -> Vec<String> {
    let bids = ev.iter().filter_map(|e| match e {
        Event::Bid(b) => Some(b),
        _ => None,
    });
    let persons: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Person(p) => Some(p),
            _ => None,
        })
        .collect();
    let auctions: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Auction(a) => Some(a),
            _ => None,
        })
        .collect();
    let start = |t: i64| t - t.rem_euclid(WINDOW_MS);
    let out: Vec<String> = match query {
        "q0" => bids.map(|b| format!("{b:?}")).collect(),
        "q1" => bids
            .map(|b| {
                let mut b = b.clone();
                b.price = to_euros(b.price);
                format!("{b:?}")
            })
            .collect(),
        "q2" => bids
            .filter(|b| b.auction % 123 == 0)
            .map(|b| format!("{:?}", (b.auction, b.price)))
            .collect(),
        "q3" => {
            let sellers: HashMap<i64, _> = persons
                .iter()
                .filter(|p| matches!(p.state.as_str(), "OR" | "ID" | "CA"))
                .map(|p| (p.id, *p))
                .collect();
            auctions
                .iter()
                .filter(|a| a.category == 10)
                .filter_map(|a| sellers.get(&a.seller).map(|p| (p, a)))
                .map(|(p, a)| {
                    format!(
                        "{:?}",
                        (p.name.clone(), p.city.clone(), p.state.clone(), a.id)
                    )
                })
                .collect()
        }
        "q4" => {
            // The final average per category, as (category, auctions, average).
            let mut per: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
            for a in &auctions {
                let best = ev
                    .iter()
                    .filter_map(|e| match e {
                        Event::Bid(b) if b.auction == a.id => Some(b),
                        _ => None,
                    })
                    .filter(|b| (a.date_time..=a.expires).contains(&b.date_time))
                    .map(|b| b.price)
                    .max();
                if let Some(p) = best {
                    let t = per.entry(a.category).or_default();
                    t.0 += p;
                    t.1 += 1;
                }
            }
            per.into_iter()
                .map(|(c, (sum, n))| format!("{:?}", (c, n, sum / n as i64)))
                .collect()
        }
        "q5" => {
            let mut counts: BTreeMap<i64, HashMap<i64, u64>> = BTreeMap::new();
            for b in bids {
                let last = b.date_time - b.date_time.rem_euclid(HOP_SLIDE_MS);
                let mut s = last;
                while s > b.date_time - WINDOW_MS {
                    *counts.entry(s).or_default().entry(b.auction).or_default() += 1;
                    s -= HOP_SLIDE_MS;
                }
            }
            counts
                .into_iter()
                .flat_map(|(s, per)| {
                    let max = per.values().copied().max().unwrap_or(0);
                    per.into_iter()
                        .filter(move |(_, c)| *c == max)
                        .map(move |(a, c)| format!("{:?}", (s, a, c)))
                })
                .collect()
        }
        "q7" => {
            let mut per: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            for b in bids {
                per.entry(start(b.date_time)).or_default().push(b);
            }
            per.into_values()
                .flat_map(|bs| {
                    let max = bs.iter().map(|b| b.price).max().unwrap_or(0);
                    bs.into_iter()
                        .filter(move |b| b.price == max)
                        .map(|b| format!("{:?}", (b.auction, b.price, b.bidder, b.date_time)))
                })
                .collect()
        }
        "q8" => {
            let sold: HashSet<(i64, i64)> = auctions
                .iter()
                .map(|a| (a.seller, start(a.date_time)))
                .collect();
            let rows: HashSet<String> = persons
                .iter()
                .filter(|p| sold.contains(&(p.id, start(p.date_time))))
                .map(|p| format!("{:?}", (p.id, p.name.clone(), start(p.date_time))))
                .collect();
            rows.into_iter().collect()
        }
        other => panic!("no reference for {other}"),
    };
    sorted(out)
}

/// The update with the highest count per category, from `(category, count, avg)` lines.
fn final_updates(lines: &[String]) -> Vec<String> {
    let mut last: BTreeMap<i64, (u64, String)> = BTreeMap::new();
    for l in lines {
        let parts: Vec<i64> = l
            .trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .map(|x| x.parse().expect("a q4 row"))
            .collect();
        let e = last.entry(parts[0]).or_insert((0, String::new()));
        if parts[1] as u64 >= e.0 {
            *e = (parts[1] as u64, l.clone());
        }
    }
    sorted(last.into_values().map(|(_, l)| l).collect())
}

#[test]
fn queries_match_their_references() {
    for (n, p) in [(6_000u64, 1u64), (20_000, 3)] {
        let ev = events(n, p);
        for q in ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"] {
            let want = reference(q, &ev);
            let cfg = NexmarkConfig::new(n).with_rate(RATE);
            let mut got = nexmark::run_with(q, cfg, p as i64, true).unwrap();
            if q == "q4" {
                // q4 emits an update per closed auction; compare each category's last one.
                got.lines = final_updates(&got.lines);
                got.rows = got.lines.len() as u64;
            }
            assert_eq!(got.rows as usize, got.lines.len());
            assert!(!want.is_empty(), "{q}: the reference is empty at n={n}");
            if matches!(q, "q5" | "q7") {
                assert!(
                    want.len() >= 3,
                    "{q}: {} rows; the input spans too few windows",
                    want.len()
                );
            }
            assert_eq!(
                got.lines.len(),
                want.len(),
                "{q} at n={n}, p={p}: row count"
            );
            assert_eq!(got.lines, want, "{q} at n={n}, p={p}");
        }
    }
}

#[test]
fn stateful_queries_on_rocksdb_match_their_references() {
    use weir_api::prelude::{StateBackendConfig, StateBackendKind};
    let (n, p) = (12_000u64, 2u64);
    let ev = events(n, p);
    let tmp = tempfile::tempdir().unwrap();
    for q in ["q3", "q4", "q5", "q7", "q8"] {
        let want = reference(q, &ev);
        let cfg = NexmarkConfig::new(n).with_rate(RATE);
        let backend = StateBackendConfig {
            kind: StateBackendKind::RocksDb,
            incremental: true,
            local_dir: Some(tmp.path().display().to_string()),
            rocksdb_memory_bytes: None,
        };
        let mut got = nexmark::run_on(q, cfg, p as i64, true, backend).unwrap();
        if q == "q4" {
            got.lines = final_updates(&got.lines);
        }
        assert!(!want.is_empty(), "{q}: the reference is empty");
        assert_eq!(got.lines, want, "{q} on RocksDB at n={n}, p={p}");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "RocksDB directories left behind");
}

#[test]
fn an_unknown_query_is_an_error() {
    let e = nexmark::run("q6", 10, 1, false).err().unwrap();
    assert!(e.contains("unknown Nexmark query 'q6'"), "{e}");
}
