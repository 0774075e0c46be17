//! The `windows` example reproduces Flink's own outputs on the hand-made cases in
//! `tests/data/flink-window-cases/` (established by running Flink 2.3).

#[path = "../examples/windows.rs"]
#[allow(dead_code)]
mod windows;

use clap::Parser;
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flink-window-cases")
}

fn sorted_lines(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn flink_window_cases_are_reproduced() {
    let dir = cases_dir();
    let Ok(cases) = std::fs::read_to_string(dir.join("CASES")) else {
        panic!("window cases not found at {}", dir.display());
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let name = parts.next().unwrap();
        let input = parts.next().unwrap();
        let out = tmp.path().join(format!("{name}.out"));
        let late = tmp.path().join(format!("{name}.late"));
        let mut argv: Vec<String> = vec![
            "windows".into(),
            "--input".into(),
            dir.join(input).display().to_string(),
        ];
        argv.extend(parts.map(String::from));
        argv.extend(["--output".into(), out.display().to_string()]);
        argv.extend(["--late-output".into(), late.display().to_string()]);
        let expected_out = sorted_lines(&dir.join("expected").join(format!("{name}.out")));
        let expected_late = sorted_lines(&dir.join("expected").join(format!("{name}.late")));
        // The default trigger (specialised operator) and the explicit one (general operator).
        for explicit in [false, true] {
            let mut argv = argv.clone();
            if explicit {
                argv.push("--explicit-trigger".into());
            }
            let args = windows::Args::try_parse_from(&argv).unwrap();
            windows::run(&args).unwrap_or_else(|e| panic!("case {name}: {e}"));
            let ctx = format!("case {name} (explicit trigger {explicit})");
            assert_eq!(sorted_lines(&out), expected_out, "{ctx}: firings");
            assert_eq!(sorted_lines(&late), expected_late, "{ctx}: late records");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} cases ran");
}

#[test]
fn bad_lines_fail_with_their_line_number() {
    let tmp = tempfile::tempdir().unwrap();
    for (content, expect) in [
        ("a,1,1\n\na,2\n", "line 3"),
        ("a,1,1\na,x,2\n", "line 2: timestamp 'x'"),
        ("a,1,1\na,2,1.5\n", "line 2: value '1.5'"),
    ] {
        let input = tmp.path().join("in.csv");
        std::fs::write(&input, content).unwrap();
        let args = windows::Args::try_parse_from([
            "windows",
            "--input",
            input.to_str().unwrap(),
            "--output",
            tmp.path().join("out.csv").to_str().unwrap(),
            "--window",
            "tumbling:10",
            "--out-of-orderness",
            "0",
        ])
        .unwrap();
        let msg = windows::run(&args).unwrap_err().to_string();
        assert!(msg.contains(expect), "{msg}");
    }
    // An empty file gives an empty output.
    let input = tmp.path().join("empty.csv");
    std::fs::write(&input, "").unwrap();
    let out = tmp.path().join("empty.out");
    let args = windows::Args::try_parse_from([
        "windows",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--window",
        "session:5",
        "--out-of-orderness",
        "3",
    ])
    .unwrap();
    windows::run(&args).unwrap();
    assert_eq!(std::fs::read_to_string(out).unwrap(), "");
    // Bad window specs are argument errors.
    assert!(windows::Args::try_parse_from([
        "w",
        "--input",
        "x",
        "--output",
        "y",
        "--window",
        "hopping:5",
        "--out-of-orderness",
        "0"
    ])
    .is_err());
}
