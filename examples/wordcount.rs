//! Word count: reads text, counts each word, writes `word<TAB>count` lines.
//!
//! ```text
//! cargo run --release --example wordcount -- --input PATH [--input PATH ...] --output PATH \
//!     [--parallelism N] [--disable-chaining]
//! ```
//!
//! Each line is lowercased and split on every character that is not alphanumeric; empty
//! tokens are dropped. Without `--input` a small built-in text is counted; without
//! `--output` the counts are printed.

use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;
use weir::prelude::*;

/// Command line of the word count example.
#[derive(Parser, Debug)]
#[command(about = "Counts words with Weir's DataStream API")]
pub struct Args {
    /// Input file or directory; may be given several times.
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Output file (a single file at any parallelism).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 1)]
    pub parallelism: i64,
    /// Run every operator in its own task.
    #[arg(long)]
    pub disable_chaining: bool,
}

const BUILT_IN_TEXT: &[&str] = &[
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
    "And by opposing end them. To die: to sleep;",
];

/// Lowercases `line` and splits it on every non-alphanumeric character.
pub fn tokenize(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
}

/// Counts the words of each key-partitioned subtask and emits the totals at the end of
/// input.
#[derive(Clone, Default)]
struct FinalCounts {
    counts: HashMap<String, u64>,
}

impl ProcessFunction<(String, u64), String> for FinalCounts {
    fn process_element(
        &mut self,
        (word, n): (String, u64),
        _: &mut ProcessContext<'_>,
        _: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        *self.counts.entry(word).or_default() += n;
        Ok(())
    }

    fn finish(&mut self, out: &mut Collector<'_, String>) -> Result<(), UserError> {
        for (w, n) in self.counts.drain() {
            out.collect(format!("{w}\t{n}"));
        }
        Ok(())
    }
}

/// Builds and runs the job.
pub fn run(args: &Args) -> Result<JobExecutionResult, ApiError> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    if args.disable_chaining {
        env.disable_operator_chaining();
    }
    let lines = if args.input.is_empty() {
        env.from_collection(BUILT_IN_TEXT.iter().map(|s| s.to_string()).collect())
    } else {
        env.from_source(TextFileSource::new(args.input.clone()), "Text Files")
    };
    let counts = lines
        .flat_map(|line: String, out: &mut Collector<(String, u64)>| {
            for w in tokenize(&line) {
                out.collect((w, 1));
            }
        })
        .name("Tokenizer")
        .key_by(|(w, _): &(String, u64)| w.clone())
        .as_stream()
        .process(FinalCounts::default())
        .name("Count");
    match &args.output {
        Some(path) => {
            counts
                .write_as_text(path, WriteMode::Overwrite)
                // One output file whatever the parallelism of the counting.
                .set_parallelism(1)
                .name("Counts File");
        }
        None => {
            counts.print();
        }
    }
    env.execute("Word Count")
}

#[allow(dead_code)]
fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            eprintln!("Job '{}' finished in {:?}", r.job_name, r.net_runtime);
            for op in &r.operators {
                eprintln!(
                    "  {:<40} records in {:>10}  out {:>10}",
                    op.name, op.records_in, op.records_out
                );
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
