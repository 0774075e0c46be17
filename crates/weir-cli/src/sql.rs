//! `weir sql`: runs a Flink SQL script (`-f FILE`, or the statements on standard input) on
//! the embedded mini-cluster, printing each SELECT's result as a table; with
//! `--results-dir` it also writes the result files of Weir's SQL oracle format. On a
//! terminal without `-f` (or with `--interactive`) it is an interactive client
//! ([`crate::sql_repl`]).

use crate::error::{CliError, Result};
use clap::Args;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use weir_sql::client::Session;

/// `weir sql` arguments.
#[derive(Args)]
pub struct SqlArgs {
    /// The script to run (without it, the statements are read from standard input).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Writes result-i.csv, changelog-i.csv and schema-i.txt of the i-th SELECT here.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// The jobs' parallelism (`SET 'parallelism.default'` changes it).
    #[arg(short = 'p', long, default_value_t = 1)]
    parallelism: u32,
    /// The interactive client even when standard input is not a terminal.
    #[arg(short = 'i', long, conflicts_with_all = ["file", "results_dir"])]
    interactive: bool,
}

/// Runs the script; the first failing statement ends it with its number and line, and
/// no result file is written.
pub fn run(args: SqlArgs) -> Result<()> {
    let cwd = std::env::current_dir().map_err(CliError::io("cannot read the current directory"))?;
    let mut session = Session::new(cwd, args.parallelism);
    if args.interactive
        || (args.file.is_none() && args.results_dir.is_none() && std::io::stdin().is_terminal())
    {
        return crate::sql_repl::run(session);
    }
    let mut out = std::io::stdout();
    let ran = match &args.file {
        Some(path) => session.run_file(path, &mut out),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(CliError::io(
                    "cannot read the statements from standard input",
                ))?;
            session.run_text(&text, &mut out)
        }
    };
    ran.map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(dir) = &args.results_dir {
        session
            .write_results(dir)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    Ok(())
}
