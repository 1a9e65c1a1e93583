//! errors.md's table of rustc errors lists every trybuild case of `dsl/tests/ui/`, so that a new
//! case (a new kind of misuse the DSL rejects) cannot be added without documenting it, and a
//! case that is removed or renamed does not linger in the guide.

use std::collections::BTreeSet;
use std::path::Path;

/// The cases named in the first column of errors.md's tables: `` | `name.rs` | ``.
fn listed() -> BTreeSet<String> {
    let guide = include_str!("../errors.md");
    guide
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once(".rs` |"))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The `.rs` files of `dsl/tests/ui/`, by stem.
fn cases() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dsl/tests/ui");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            path.file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn every_ui_case_is_in_the_error_table() {
    let (cases, listed) = (cases(), listed());
    assert!(cases.len() >= 30, "found only {} cases", cases.len());
    let missing: Vec<_> = cases.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "dsl/tests/ui cases missing from docs/errors.md's table: {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&cases).collect();
    assert!(
        stale.is_empty(),
        "docs/errors.md lists cases that dsl/tests/ui no longer has: {stale:?}"
    );
}

/// Each row's message is the key sentence of the case's `.stderr`: the table's third column,
/// up to its first `:` or `(`, appears in the first error line of the expected output once
/// the paths rustc prints (`greta_dsl::front::`, `greta_dsl::prelude::`) are shortened and
/// backquotes dropped.
#[test]
fn every_message_matches_its_stderr() {
    let guide = include_str!("../errors.md");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dsl/tests/ui");
    for line in guide
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains(".rs` |"))
    {
        let cells: Vec<&str> = line.split(" | ").collect();
        let name = cells[0].trim_start_matches("| `").trim_end_matches('`');
        let message = cells[2].trim_end_matches(" |").trim_end_matches('|').trim();
        let key = message
            .split([':', '('])
            .next()
            .expect("split yields one piece")
            .trim();
        let stderr = std::fs::read_to_string(dir.join(name).with_extension("stderr"))
            .unwrap_or_else(|e| panic!("{name}.stderr: {e}"));
        let stderr = stderr
            .replace("greta_dsl::front::", "")
            .replace("greta_dsl::prelude::", "")
            .replace('`', "");
        // The table may quote code the message leaves bare (`#[device]`).
        let key = key.replace('`', "");
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or_else(|| panic!("{name}.stderr has no error line"));
        assert!(
            first.contains(&key),
            "docs/errors.md says `{key}` for {name}.rs; its .stderr says `{first}`"
        );
    }
}
