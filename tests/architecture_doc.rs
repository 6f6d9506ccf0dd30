//! docs/architecture.md matches the tree: its module listing (the ```text block under
//! "Modules") names every `.rs` file under `src/`, and names no file that does not exist.

use std::collections::BTreeSet;
use std::path::Path;

/// The files the listing names, as paths relative to the repository (`src/...`).
///
/// A line at column 0 starting with `src/` is a file (ends with `.rs`) or a directory (ends
/// with `/`) that the indented lines below it are relative to; an indented line's first word
/// is a file (`name.rs` or `sub/name.rs`).
fn listed(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_block = false;
    let mut dir = String::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = line.trim() == "```text";
            continue;
        }
        if !in_block {
            continue;
        }
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        if !line.starts_with(' ') {
            if word.ends_with('/') {
                dir = word.to_string();
            } else if word.ends_with(".rs") {
                out.insert(word.to_string());
                dir.clear();
            }
        } else if word.ends_with(".rs") && !dir.is_empty() {
            out.insert(format!("{dir}{word}"));
        }
    }
    out
}

fn on_disk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            on_disk(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.insert(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

#[test]
fn architecture_doc_names_every_module_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let named = listed(&doc);
    let mut files = BTreeSet::new();
    on_disk(root, &root.join("src"), &mut files);
    let missing: Vec<_> = files.difference(&named).collect();
    let stale: Vec<_> = named.difference(&files).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md (\"Modules\") does not match src/:\n  not named: {missing:?}\n  named but absent: {stale:?}"
    );
}

#[test]
fn the_listing_parser_reads_files_and_directories() {
    let doc = "text\n```text\nsrc/main.rs   entry\nsrc/ts/        wire\n  mod.rs      x\n  packet.rs   y\nsrc/net/\n  failover/mod.rs  z\n```\n  stray.rs\n";
    let got: Vec<String> = listed(doc).into_iter().collect();
    assert_eq!(
        got,
        [
            "src/main.rs",
            "src/net/failover/mod.rs",
            "src/ts/mod.rs",
            "src/ts/packet.rs"
        ]
    );
    // A file missing from the listing is found by the comparison above.
    let mut files: BTreeSet<String> = listed(doc);
    files.insert("src/ts/pes.rs".into());
    assert_eq!(
        files.difference(&listed(doc)).collect::<Vec<_>>(),
        ["src/ts/pes.rs"]
    );
}
