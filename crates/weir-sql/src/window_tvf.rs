//! Flink's windowing table-valued functions in a FROM clause:
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND))`, `HOP(..., slide, size)`,
//! `CUMULATE(..., step, size)`.
//!
//! DataFusion's SQL parser does not take this syntax (a `TABLE t` argument, `DESCRIPTOR`),
//! so the statement's tokens are rewritten before parsing: each call becomes a reference to
//! a table named `__window_<n>`, and the call is recorded as a [`WindowTvf`]. The planner
//! resolves those names to the windowed table: the input's columns plus `window_start`,
//! `window_end` and `window_time`, as Flink's window TVFs return them.

use crate::error::{Result, SqlError};
use crate::interval::interval_ms;
use datafusion_sql::sqlparser::ast::Statement;
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

/// Which windows a window TVF assigns, with lengths in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowKind {
    /// Fixed windows of `size` that do not overlap.
    Tumble {
        /// Window length.
        size: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length.
        size: i64,
    },
    /// Windows growing by `step` from the start of each `size`-long period.
    Cumulate {
        /// Growth of the window end.
        step: i64,
        /// Longest window.
        size: i64,
    },
    /// Sessions per partition: a row opens `[ts, ts + gap)`, and windows that overlap or
    /// touch merge into one.
    Session {
        /// The gap of inactivity that ends a session.
        gap: i64,
    },
}

impl WindowKind {
    /// The windows `[start, end)` that hold a row at time `ts`, in order of their ends
    /// (Flink aligns windows to the epoch, with no offset).
    pub fn windows_of(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            WindowKind::Tumble { size } => {
                let start = ts - ts.rem_euclid(size);
                out.push((start, start + size));
            }
            WindowKind::Hop { slide, size } => {
                let last_start = ts - ts.rem_euclid(slide);
                let mut start = last_start - size + slide;
                // The earliest window holding `ts` starts after `ts - size`.
                while start <= ts - size {
                    start += slide;
                }
                while start <= last_start {
                    out.push((start, start + size));
                    start += slide;
                }
            }
            WindowKind::Session { gap } => out.push((ts, ts.saturating_add(gap))),
            WindowKind::Cumulate { step, size } => {
                let start = ts - ts.rem_euclid(size);
                let first_end = ts - ts.rem_euclid(step) + step;
                let mut end = first_end;
                while end <= start + size {
                    out.push((start, end));
                    end += step;
                }
            }
        }
    }

    /// The start of the window that ends at `end` (a session's start is its own: this
    /// gives that of a session of one row).
    pub fn start_of(&self, end: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => end - size,
            WindowKind::Session { gap } => end - gap,
            WindowKind::Cumulate { size, .. } => {
                let e = end - 1;
                e - e.rem_euclid(size)
            }
        }
    }

    /// The function's name in SQL.
    pub fn name(&self) -> &'static str {
        match self {
            WindowKind::Tumble { .. } => "TUMBLE",
            WindowKind::Hop { .. } => "HOP",
            WindowKind::Cumulate { .. } => "CUMULATE",
            WindowKind::Session { .. } => "SESSION",
        }
    }
}

/// One window TVF call of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowTvf {
    /// The table name it was rewritten to (`__window_<n>`).
    pub alias: String,
    /// The windowed table.
    pub table: String,
    /// The time attribute named by `DESCRIPTOR`.
    pub time_column: String,
    /// The partition columns of a SESSION (`PARTITION BY`): sessions are per partition.
    pub partition_by: Vec<String>,
    /// The windows.
    pub kind: WindowKind,
}

/// The prefix of the names window TVF calls are rewritten to.
pub const WINDOW_TABLE_PREFIX: &str = "__window_";

/// Parses one statement, rewriting its window TVF calls first.
pub fn parse_statement(sql: &str) -> Result<(Statement, Vec<WindowTvf>)> {
    parse_statement_with_prefix(sql, WINDOW_TABLE_PREFIX)
}

/// [`parse_statement`], naming the window tables `<prefix><n>` (a view's windows get a
/// prefix of their own, so they are told apart from those of the statements using it).
pub fn parse_statement_with_prefix(sql: &str, prefix: &str) -> Result<(Statement, Vec<WindowTvf>)> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Invalid(format!("sql parser error: {e}")))?;
    let (tokens, windows) = rewrite(tokens, prefix)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let statement = parser
        .parse_statement()
        .map_err(|e| SqlError::Invalid(format!("sql parser error: {e}")))?;
    // Only a `;` may follow the statement.
    while parser.consume_token(&Token::SemiColon) {}
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(SqlError::Invalid(format!(
            "sql parser error: unexpected {} after the statement at Line: {}, Column: {}",
            next.token, next.span.start.line, next.span.start.column
        )));
    }
    Ok((statement, windows))
}

fn is_word(t: &Token, keyword: &str) -> bool {
    matches!(t, Token::Word(Word { value, quote_style: None, .. }) if value.eq_ignore_ascii_case(keyword))
}

fn is_space(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

/// Replaces every `TABLE(<window fn>(...))` in `tokens` by a window table's name.
fn rewrite(
    tokens: Vec<TokenWithSpan>,
    prefix: &str,
) -> Result<(Vec<TokenWithSpan>, Vec<WindowTvf>)> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut windows = Vec::new();
    let mut i = 0;
    // Indices of the tokens that are not whitespace, to look ahead in.
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|&k| !is_space(&tokens[k]))
        .collect();
    let mut s = 0; // position in `solid`
    while i < tokens.len() {
        if is_space(&tokens[i]) {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        while solid[s] < i {
            s += 1;
        }
        let at = |k: usize| solid.get(s + k).map(|&j| &tokens[j].token);
        let window_fn = match at(2) {
            Some(t)
                if ["TUMBLE", "HOP", "CUMULATE", "SESSION"]
                    .iter()
                    .any(|f| is_word(t, f)) =>
            {
                t.to_string().to_ascii_uppercase()
            }
            _ => String::new(),
        };
        if window_fn.is_empty()
            || !at(0).is_some_and(|t| is_word(t, "TABLE"))
            || at(1) != Some(&Token::LParen)
            || at(3) != Some(&Token::LParen)
        {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // The call's arguments, split at top-level commas, up to its closing parenthesis.
        let mut depth = 0;
        let mut args: Vec<Vec<Token>> = vec![Vec::new()];
        let mut k = s + 4;
        loop {
            let Some(&j) = solid.get(k) else {
                return Err(SqlError::Invalid(format!(
                    "sql parser error: {window_fn}( is not closed"
                )));
            };
            let t = &tokens[j].token;
            match t {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => break,
                Token::RParen => depth -= 1,
                Token::Comma if depth == 0 => {
                    args.push(Vec::new());
                    k += 1;
                    continue;
                }
                _ => {}
            }
            if let Some(last) = args.last_mut() {
                last.push(t.clone());
            }
            k += 1;
        }
        // `k` is the call's `)`; the TABLE( needs one more.
        if solid.get(k + 1).map(|&j| &tokens[j].token) != Some(&Token::RParen) {
            return Err(SqlError::Invalid(format!(
                "sql parser error: TABLE({window_fn}(...) needs a closing parenthesis"
            )));
        }
        let alias = format!("{prefix}{}", windows.len());
        windows.push(window_call(&window_fn, &args, alias.clone())?);
        out.push(TokenWithSpan::new(
            Token::Word(Word {
                value: alias,
                quote_style: None,
                keyword: Keyword::NoKeyword,
            }),
            tokens[i].span,
        ));
        i = solid[k + 1] + 1;
    }
    Ok((out, windows))
}

/// The window TVF `name` with arguments `args` (tokens without whitespace).
fn window_call(name: &str, args: &[Vec<Token>], alias: String) -> Result<WindowTvf> {
    let usage = || {
        SqlError::Invalid(format!(
            "{name} takes (TABLE t, DESCRIPTOR(time_column), {})",
            if name == "TUMBLE" {
                "size"
            } else if name == "SESSION" {
                "gap"
            } else if name == "HOP" {
                "slide, size"
            } else {
                "step, size"
            }
        ))
    };
    let expected = if name == "TUMBLE" || name == "SESSION" {
        3
    } else {
        4
    };
    if args.len() != expected {
        return Err(usage());
    }
    let (table, partition_by) = match args[0].as_slice() {
        [t, Token::Word(w)] if is_word(t, "TABLE") => (w.value.clone(), Vec::new()),
        [t, Token::Word(w), p, b, rest @ ..]
            if is_word(t, "TABLE")
                && is_word(p, "PARTITION")
                && is_word(b, "BY")
                && name == "SESSION" =>
        {
            let columns: Vec<String> = match rest {
                [Token::Word(c)] => vec![c.value.clone()],
                [Token::LParen, inner @ .., Token::RParen] => inner
                    .iter()
                    .filter_map(|t| match t {
                        Token::Word(c) => Some(Ok(c.value.clone())),
                        Token::Comma => None,
                        _ => Some(Err(())),
                    })
                    .collect::<std::result::Result<_, ()>>()
                    .map_err(|()| usage())?,
                _ => return Err(usage()),
            };
            (w.value.clone(), columns)
        }
        _ => return Err(usage()),
    };
    let time_column = match args[1].as_slice() {
        [d, Token::LParen, Token::Word(w), Token::RParen] if is_word(d, "DESCRIPTOR") => {
            w.value.clone()
        }
        _ => return Err(usage()),
    };
    let lengths = args[2..]
        .iter()
        .map(|a| {
            let text: String = a.iter().map(|t| format!("{t} ")).collect();
            let e = Parser::new(&GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| SqlError::Invalid(format!("{name}: {e}")))?;
            let ms = interval_ms(&e)?;
            if ms <= 0 {
                return Err(SqlError::Invalid(format!(
                    "{name}: the interval {text}must be positive"
                )));
            }
            Ok(ms)
        })
        .collect::<Result<Vec<i64>>>()?;
    let kind = match (name, lengths.as_slice()) {
        ("TUMBLE", [size]) => WindowKind::Tumble { size: *size },
        ("SESSION", [gap]) => WindowKind::Session { gap: *gap },
        ("HOP", [slide, size]) => {
            if size % slide != 0 {
                return Err(SqlError::Invalid(format!(
                    "HOP: the size ({size} ms) must be a multiple of the slide ({slide} ms)"
                )));
            }
            WindowKind::Hop {
                slide: *slide,
                size: *size,
            }
        }
        ("CUMULATE", [step, size]) => {
            if size % step != 0 {
                return Err(SqlError::Invalid(format!(
                    "CUMULATE: the size ({size} ms) must be a multiple of the step ({step} ms)"
                )));
            }
            WindowKind::Cumulate {
                step: *step,
                size: *size,
            }
        }
        _ => return Err(usage()),
    };
    Ok(WindowTvf {
        alias,
        table,
        time_column,
        partition_by,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_calls_become_tables() {
        let (statement, windows) = parse_statement(
            "SELECT window_start, COUNT(*) FROM TABLE(\n  TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND)) w GROUP BY window_start",
        )
        .unwrap();
        assert_eq!(
            statement.to_string(),
            "SELECT window_start, COUNT(*) FROM __window_0 w GROUP BY window_start"
        );
        assert_eq!(
            windows,
            vec![WindowTvf {
                alias: "__window_0".into(),
                table: "bid".into(),
                time_column: "ts".into(),
                partition_by: Vec::new(),
                kind: WindowKind::Tumble { size: 10_000 },
            }]
        );
        let (_, windows) = parse_statement(
            "SELECT * FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND))",
        )
        .unwrap();
        assert_eq!(
            windows[0].kind,
            WindowKind::Hop {
                slide: 5_000,
                size: 20_000
            }
        );
        let (_, windows) = parse_statement(
            "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY (bidder, auction), DESCRIPTOR(ts), INTERVAL '10' SECOND))",
        )
        .unwrap();
        assert_eq!(windows[0].kind, WindowKind::Session { gap: 10_000 });
        assert_eq!(windows[0].partition_by, vec!["bidder", "auction"]);
        // Quoted text is left alone.
        let (statement, windows) = parse_statement("SELECT 'TABLE(TUMBLE(TABLE x' FROM t").unwrap();
        assert!(windows.is_empty());
        assert_eq!(
            statement.to_string(),
            "SELECT 'TABLE(TUMBLE(TABLE x' FROM t"
        );
    }

    #[test]
    fn bad_window_calls_are_errors() {
        for bad in [
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts)))",
            "SELECT * FROM TABLE(TUMBLE(bid, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "SELECT * FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '10' SECOND))",
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' SECOND)",
            "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY 3, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
            "SELECT * FROM TABLE(TUMBLE(TABLE bid PARTITION BY a, DESCRIPTOR(ts), INTERVAL '1' SECOND))",
        ] {
            assert!(parse_statement(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_of_a_row() {
        let mut w = Vec::new();
        WindowKind::Tumble { size: 10 }.windows_of(-3, &mut w);
        assert_eq!(w, vec![(-10, 0)]);
        WindowKind::Hop { slide: 5, size: 20 }.windows_of(12, &mut w);
        assert_eq!(w, vec![(-5, 15), (0, 20), (5, 25), (10, 30)]);
        WindowKind::Hop { slide: 5, size: 20 }.windows_of(10, &mut w);
        assert_eq!(w, vec![(-5, 15), (0, 20), (5, 25), (10, 30)]);
        WindowKind::Cumulate { step: 2, size: 6 }.windows_of(9, &mut w);
        assert_eq!(w, vec![(6, 10), (6, 12)]);
        for (start, end) in &w {
            assert_eq!(
                WindowKind::Cumulate { step: 2, size: 6 }.start_of(*end),
                *start
            );
        }
        assert_eq!(WindowKind::Hop { slide: 5, size: 20 }.start_of(30), 10);
    }
}
