//! The word count example on a generated corpus: identical counts at parallelism 1, 2 and
//! 4, with and without chaining, equal to a reference computed here.

#[path = "../examples/wordcount.rs"]
#[allow(dead_code)]
mod wordcount;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A deterministic corpus with mixed case, punctuation, digits and non-ASCII letters.
fn write_corpus(dir: &Path) -> Vec<std::path::PathBuf> {
    let vocab = [
        "Flink", "weir", "stream", "STATE", "window", "käse", "naïve", "x1", "42", "über", "a",
    ];
    let seps = [" ", ", ", "--", "\t", "!", " (", ") ", "'", "...", "  "];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut paths = Vec::new();
    for f in 0..3 {
        let p = dir.join(format!("corpus-{f}.txt"));
        let mut file = std::fs::File::create(&p).unwrap();
        for _ in 0..(2_000 + f * 700) {
            let words = next() % 12;
            let mut line = String::new();
            for _ in 0..words {
                line.push_str(vocab[(next() % vocab.len() as u64) as usize]);
                line.push_str(seps[(next() % seps.len() as u64) as usize]);
            }
            writeln!(file, "{line}").unwrap();
        }
        paths.push(p);
    }
    paths
}

fn reference(paths: &[std::path::PathBuf]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for p in paths {
        for line in std::fs::read_to_string(p).unwrap().lines() {
            for w in line
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(w.to_lowercase()).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn read_output(path: &Path) -> BTreeMap<String, u64> {
    let files: Vec<_> = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut counts = BTreeMap::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let (w, n) = line.split_once('\t').expect("word<TAB>count");
            assert!(
                counts.insert(w.to_string(), n.parse().unwrap()).is_none(),
                "{w} twice"
            );
        }
    }
    counts
}

#[test]
fn word_count_is_identical_across_parallelism_and_chaining() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_corpus(dir.path());
    let expected = reference(&inputs);
    assert!(
        expected.contains_key("käse")
            && expected.contains_key("flink")
            && expected.contains_key("42")
    );
    for parallelism in [1, 2, 4] {
        for disable_chaining in [false, true] {
            let out = dir
                .path()
                .join(format!("out-{parallelism}-{disable_chaining}"));
            let args = wordcount::Args {
                input: inputs.clone(),
                output: Some(out.clone()),
                parallelism,
                disable_chaining,
            };
            let r = wordcount::run(&args).unwrap();
            assert!(out.is_file(), "one output file at any parallelism");
            assert_eq!(
                read_output(&out),
                expected,
                "parallelism {parallelism}, chaining disabled {disable_chaining}"
            );
            let lines: u64 = inputs
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap().lines().count() as u64)
                .sum();
            assert_eq!(r.operators[0].records_out, lines);
        }
    }
}

#[test]
fn small_block_size_splits_files_across_subtasks() {
    use weir::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_corpus(dir.path());
    let expected: usize = inputs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let lines = env
        .from_source(
            TextFileSource::new(inputs.clone()).with_block_size(4096),
            "Blocks",
        )
        .collect_values();
    env.execute("blocks").unwrap();
    let mut got = lines.take();
    let mut want: Vec<String> = inputs
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), expected);
    assert_eq!(got, want);
}
