//! The committed known-answer data (`tests/data/`) is exactly what `compat/make_testdata.py`
//! makes now from real Django and CPython (compat/'s venvs, PostgreSQL on 127.0.0.1:5432,
//! pg_dump), so it cannot go stale: the script runs into a temporary directory and every file is
//! compared byte for byte, both ways. A missing venv fails with the command that makes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const REGENERATE: &str = "compat/bootstrap.sh all && python3 compat/make_testdata.py";

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// The changed middle of two texts (common leading and trailing lines dropped), at most
/// `limit` lines per side, as `-`/`+` lines with their line numbers.
fn diff(committed: &str, made: &str, limit: usize) -> String {
    let a: Vec<&str> = committed.lines().collect();
    let b: Vec<&str> = made.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = String::new();
    for (sign, lines) in [("-", &a), ("+", &b)] {
        let changed = &lines[head..lines.len() - tail];
        for (i, line) in changed.iter().take(limit).enumerate() {
            out.push_str(&format!("{sign}{:>6}: {line}\n", head + i + 1));
        }
        if changed.len() > limit {
            out.push_str(&format!("{sign}  … {} more lines\n", changed.len() - limit));
        }
    }
    out
}

#[test]
fn committed_testdata_is_what_make_testdata_makes() {
    let root = Path::new(ROOT);
    let committed = root.join("tests/data");
    let out = tempfile::tempdir().unwrap();
    // The driver is standard-library Python; the 5.2 venv's interpreter is always there when
    // the data can be made at all.
    let python = root.join("compat/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the freshness check needs compat/'s venvs. Create them with \
         `compat/bootstrap.sh all` (./manage test does).",
        python.display()
    );
    let run = Command::new(&python)
        .arg(root.join("compat/make_testdata.py"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run compat/make_testdata.py");
    assert!(
        run.status.success(),
        "compat/make_testdata.py failed ({}):\n{}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let (want, got) = (files(&committed), files(out.path()));
    let mut problems = Vec::new();
    for name in want.symmetric_difference(&got) {
        let side = if want.contains(name) {
            "committed but no longer made"
        } else {
            "made but not committed"
        };
        problems.push(format!("tests/data/{}: {side}", name.display()));
    }
    for name in want.intersection(&got) {
        let a = std::fs::read(committed.join(name)).unwrap();
        let b = std::fs::read(out.path().join(name)).unwrap();
        if a != b {
            problems.push(format!(
                "tests/data/{} differs (- committed, + made now):\n{}",
                name.display(),
                diff(
                    &String::from_utf8_lossy(&a),
                    &String::from_utf8_lossy(&b),
                    30
                )
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "tests/data/ is stale:\n\n{}\n\nRegenerate it with `{REGENERATE}` and commit the result \
         (after checking that the change is expected).",
        problems.join("\n\n")
    );
    assert!(want.len() >= 7, "tests/data/ holds {} files", want.len());
}

#[test]
fn diff_shows_only_the_changed_lines() {
    let d = diff("a\nb\nc\nd\n", "a\nB\nc\nd\n", 10);
    assert_eq!(d, "-     2: b\n+     2: B\n");
    let d = diff("a\n", "a\nx\ny\nz\n", 2);
    assert_eq!(d, "+     2: x\n+     3: y\n+  … 1 more lines\n");
}
