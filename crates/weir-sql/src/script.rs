//! A SQL script as statements: `-- include: FILE` lines replaced by the file's text, then
//! split at every `;` that is not inside a quoted string, a back-quoted identifier or a
//! comment. Each statement keeps the line it starts on (in the expanded text), for errors.

use crate::error::{Result, SqlError};
use std::path::{Path, PathBuf};

/// One statement of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// 1-based position among the script's statements.
    pub number: usize,
    /// The line of the expanded script the statement starts on (1-based).
    pub line: usize,
    /// The statement's text, without its `;`, trimmed.
    pub text: String,
}

/// How deep includes may nest (a file that includes itself fails here, not by recursion).
const MAX_INCLUDE_DEPTH: usize = 16;

/// The script at `path` with its `-- include:` lines replaced (paths relative to the file
/// that names them).
pub fn expand(path: &Path) -> Result<String> {
    expand_at(path, 0)
}

fn expand_at(path: &Path, depth: usize) -> Result<String> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(SqlError::Script(format!(
            "includes nest deeper than {MAX_INCLUDE_DEPTH} at {}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| SqlError::Script(format!("cannot read {}: {e}", path.display())))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    expand_text_at(&text, &dir, depth)
}

/// `text` with its `-- include:` lines replaced (paths relative to `dir`).
pub fn expand_text(text: &str, dir: &Path) -> Result<String> {
    expand_text_at(text, dir, 0)
}

fn expand_text_at(text: &str, dir: &Path, depth: usize) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.trim().strip_prefix("-- include:") {
            Some(file) => {
                let included: PathBuf = dir.join(file.trim());
                let body = expand_at(&included, depth + 1)?;
                out.push_str(&body);
                if !body.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// Splits `text` into statements. Statements that hold only comments and blanks are left
/// out (they are not numbered). An unterminated string or comment is an error.
pub fn split(text: &str) -> Result<Vec<Statement>> {
    scan(text).map(|(statements, _)| statements)
}

/// True if `text` ends inside a statement: code after its last `;`, or an open quote or
/// comment. An interactive client reads more lines before it runs anything.
pub fn ends_inside_statement(text: &str) -> bool {
    scan(text).map_or(true, |(_, unterminated)| unterminated)
}

/// The statements of `text`, and whether the last one lacks its `;`.
fn scan(text: &str) -> Result<(Vec<Statement>, bool)> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        Quote(char),
        LineComment,
        BlockComment,
    }
    let mut statements = Vec::new();
    let mut state = In::Code;
    let mut current = String::new();
    let mut has_code = false;
    let mut line = 1;
    let mut start_line = 1;
    // Where the statement's code starts in `current` (comments before it are left out).
    let mut start_at = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                ';' => {
                    if has_code {
                        statements.push(Statement {
                            number: statements.len() + 1,
                            line: start_line,
                            text: current[start_at..].trim().to_string(),
                        });
                    }
                    current.clear();
                    has_code = false;
                    continue;
                }
                '\'' | '"' | '`' => state = In::Quote(c),
                '-' if chars.peek() == Some(&'-') => state = In::LineComment,
                '/' if chars.peek() == Some(&'*') => state = In::BlockComment,
                _ => {}
            },
            In::Quote(q) if c == q => {
                // A doubled quote is an escaped one: stay inside.
                if chars.peek() == Some(&q) {
                    current.push(c);
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                    continue;
                }
                state = In::Code;
            }
            In::Quote(_) => {}
            In::LineComment if c == '\n' => state = In::Code,
            In::LineComment => {}
            In::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                state = In::Code;
                continue;
            }
            In::BlockComment => {}
        }
        let is_code = matches!(state, In::Code | In::Quote(_)) && !c.is_whitespace();
        let starts_comment = matches!(state, In::LineComment | In::BlockComment);
        if is_code && !starts_comment && !has_code {
            has_code = true;
            start_line = line;
            start_at = current.len();
        }
        if c == '\n' {
            line += 1;
        }
        current.push(c);
    }
    match state {
        In::Quote(q) => {
            return Err(SqlError::Script(format!(
                "a {q} opened on or after line {start_line} is never closed"
            )))
        }
        In::BlockComment => {
            return Err(SqlError::Script("a /* comment is never closed".into()));
        }
        In::Code | In::LineComment => {}
    }
    if has_code {
        statements.push(Statement {
            number: statements.len() + 1,
            line: start_line,
            text: current[start_at..].trim().to_string(),
        });
    }
    Ok((statements, has_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let text = "-- a comment; not a statement\nCREATE TABLE t (a STRING);\n\n\
                    SELECT 'x;y', `a;b` FROM t /* ; */ WHERE a = 'it''s';\n-- only a comment;\n  SELECT 1";
        let s = split(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].number, s[0].line), (1, 2));
        assert_eq!(s[0].text, "CREATE TABLE t (a STRING)");
        assert_eq!((s[1].number, s[1].line), (2, 4));
        assert!(s[1].text.ends_with("WHERE a = 'it''s'"));
        assert_eq!(
            (s[2].number, s[2].line, s[2].text.as_str()),
            (3, 6, "SELECT 1")
        );
        assert!(split("SELECT 'open").is_err());
        assert!(split("SELECT 1 /* open").is_err());
    }

    #[test]
    fn a_statement_is_complete_at_its_semicolon() {
        assert!(!ends_inside_statement("SELECT 1;\n"));
        assert!(!ends_inside_statement("SELECT 1; -- done\n"));
        assert!(!ends_inside_statement(""));
        assert!(ends_inside_statement("SELECT 1;\nSELECT"));
        assert!(ends_inside_statement("SELECT 'a;"));
        assert!(ends_inside_statement("SELECT 1 /* ; */"));
        assert!(ends_inside_statement("SELECT 1 /* open"));
    }

    #[test]
    fn includes_are_expanded_relative_to_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/inner.sql"), "CREATE TABLE t (a INT);").unwrap();
        std::fs::write(
            dir.path().join("sub/mid.sql"),
            "-- include: inner.sql\nSELECT 1;\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("main.sql"),
            "-- include: sub/mid.sql\nSELECT 2;\n",
        )
        .unwrap();
        let text = expand(&dir.path().join("main.sql")).unwrap();
        assert_eq!(text, "CREATE TABLE t (a INT);\nSELECT 1;\nSELECT 2;\n");
        std::fs::write(dir.path().join("loop.sql"), "-- include: loop.sql\n").unwrap();
        assert!(expand(&dir.path().join("loop.sql")).is_err());
        assert!(expand(&dir.path().join("missing.sql")).is_err());
    }
}
