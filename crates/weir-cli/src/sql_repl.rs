//! `weir sql` on a terminal: Flink's SQL client as a read-eval-print loop. Lines are
//! edited with the usual keys and kept in a history file (`~/.weir_sql_history`); a
//! statement runs once a line ends it with `;`. A SELECT shows its result as a table that
//! is redrawn in place while its job runs (Flink's `table` result mode), until the job
//! ends or Ctrl-C cancels it; every other statement prints what `weir sql -f` prints. A
//! failing statement prints its error and the session goes on. `QUIT;`, `EXIT;` or Ctrl-D
//! end it.

use crate::error::{CliError, Result};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir_sql::client::Session;
use weir_sql::script;

/// How often a running SELECT's table is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// What the loop does after a statement.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Read the next statement.
    Read,
    /// The user asked to leave.
    Quit,
}

/// Runs the loop until the user leaves.
pub fn run(mut session: Session) -> Result<()> {
    let mut editor = DefaultEditor::new()
        .map_err(|e| CliError::Usage(format!("cannot start the line editor: {e}")))?;
    let history =
        std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".weir_sql_history"));
    if let Some(h) = &history {
        // A missing history file is a first session.
        let _ = editor.load_history(h);
    }
    let interrupted = ctrl_c_flag();
    println!(
        "Weir SQL client. Statements end with ';'. A SELECT shows its result as it changes; Ctrl-C stops it. QUIT; or Ctrl-D leaves."
    );
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "Weir SQL> "
        } else {
            "        > "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                pending.push_str(&line);
                pending.push('\n');
                if script::ends_inside_statement(&pending) {
                    continue;
                }
                let text = std::mem::take(&mut pending);
                let _ = editor.add_history_entry(text.trim_end());
                if run_text(&mut session, &text, &interrupted) == Next::Quit {
                    break;
                }
            }
            // Ctrl-C at the prompt drops what was typed.
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::Usage(format!("cannot read a line: {e}"))),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// Ctrl-C while a SELECT runs (the terminal is not in the editor's raw mode then) sets
/// the returned flag instead of ending the process.
fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                set.store(true, Ordering::SeqCst);
            }
        });
    });
    flag
}

/// Runs the statements of `text`, each on its own: an error is printed and the next one
/// runs.
fn run_text(session: &mut Session, text: &str, interrupted: &AtomicBool) -> Next {
    // `-- include: FILE` lines resolve against the current directory.
    let base = std::env::current_dir().unwrap_or_default();
    let statements = match script::expand_text(text, &base).and_then(|t| script::split(&t)) {
        Ok(s) => s,
        Err(e) => {
            println!("[ERROR] {e}");
            return Next::Read;
        }
    };
    for s in statements {
        let word = s.text.trim().trim_end_matches(';').to_ascii_uppercase();
        if word == "QUIT" || word == "EXIT" {
            return Next::Quit;
        }
        let ran = if Session::is_query(&s.text) {
            show_live(session, &s.text, interrupted)
        } else {
            session
                .run_text(&format!("{};\n", s.text), &mut std::io::stdout())
                .map_err(|e| e.to_string())
        };
        if let Err(e) = ran {
            println!("[ERROR] {e}");
        }
    }
    Next::Read
}

/// Runs a SELECT, redrawing its result table in place until the job ends or Ctrl-C
/// cancels it.
fn show_live(
    session: &mut Session,
    sql: &str,
    interrupted: &AtomicBool,
) -> std::result::Result<(), String> {
    let text = |e: weir_sql::SqlError| e.to_string();
    let mut live = session.start_select(sql).map_err(text)?;
    interrupted.store(false, Ordering::SeqCst);
    let max_rows = std::env::var("LINES")
        .ok()
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(24)
        .saturating_sub(8)
        .max(5);
    let mut screen = Screen::default();
    let mut cancelled = false;
    loop {
        let ended = live.has_ended().map_err(text)?;
        if !cancelled && interrupted.swap(false, Ordering::SeqCst) {
            live.cancel().map_err(text)?;
            cancelled = true;
        }
        if live.refresh().map_err(text)? || screen.is_empty() {
            screen.draw(&live.render(max_rows));
        }
        if ended {
            break;
        }
        std::thread::sleep(REDRAW_EVERY);
    }
    let finished = live.finish().map_err(text);
    screen.draw(&live.render(max_rows));
    finished?;
    println!(
        "{}",
        if cancelled {
            "[INFO] Query cancelled."
        } else {
            "[INFO] Query finished."
        }
    );
    Ok(())
}

/// The lines last drawn, so the next drawing replaces them.
#[derive(Default)]
struct Screen {
    lines: usize,
}

impl Screen {
    fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Replaces what was drawn with `text` (cursor up over the old lines, clear below).
    fn draw(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.lines > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.lines);
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        self.lines = text.lines().count();
    }
}
