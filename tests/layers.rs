//! Layers that cannot be crossed by accident (docs/architecture.md, "Layers").
//!
//! The sans-IO core (`ts`, `index`, `stream`, `pacing`, `sender`, `recv`, `failover`, `probe`,
//! `bench`, `units`) reads files only through traits and uses no clock, socket, libc, mio, indicatif
//! or log subscriber, and nothing of the edge (`net`, `cli`, `io`). This test reads the
//! core's sources, leaves out comments, string literals and `#[cfg(test)]` code, and fails
//! naming file and line for every forbidden path. The scanner's own tests feed it strings,
//! so they show it does fail.

use std::path::{Path, PathBuf};

/// The core: directories and files under `src/`.
const CORE: &[&str] = &[
    "ts", "index", "stream", "pacing", "sender", "recv", "failover", "probe.rs", "bench",
    "units.rs",
];

/// Identifiers the core may not name at all, and why.
const FORBIDDEN_WORDS: &[(&str, &str)] = &[
    ("fs", "std::fs: files are opened at the edge (src/io/)"),
    ("UdpSocket", "sockets belong to src/net/"),
    ("TcpStream", "sockets belong to src/net/"),
    ("TcpListener", "sockets belong to src/net/"),
    ("UnixStream", "sockets belong to src/net/"),
    ("UnixDatagram", "sockets belong to src/net/"),
    (
        "Instant",
        "std::time::Instant: the core takes `now` as an input",
    ),
    (
        "SystemTime",
        "std::time::SystemTime: the core takes `now` as an input",
    ),
    ("libc", "system calls belong to src/net/"),
    ("mio", "the poll loop belongs to src/net/"),
    ("socket2", "sockets belong to src/net/"),
    ("indicatif", "progress bars belong to the edge (src/io/)"),
    (
        "tracing_subscriber",
        "the log subscriber is installed by the CLI",
    ),
];

/// Paths `a::b` the core may not name, and why.
const FORBIDDEN_PAIRS: &[(&str, &str, &str)] = &[
    (
        "thread",
        "sleep",
        "std::thread::sleep: the core returns deadlines",
    ),
    (
        "crate",
        "net",
        "crate::net is the driver: the core may not depend on it",
    ),
    (
        "crate",
        "cli",
        "crate::cli is the driver: the core may not depend on it",
    ),
    (
        "crate",
        "io",
        "crate::io is the file edge: the core may not depend on it",
    ),
];

/// One forbidden use: line number (1-based), what was found, why it is forbidden.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    line: usize,
    found: String,
    why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// A string literal's content (kept for `#[path = "..."]`).
    Str(String),
    /// `::`
    Path,
}

/// Tokens with their line numbers; comments dropped, literals reduced to [`Tok::Str`] or
/// nothing (chars, numbers).
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == 'r' && (at(i + 1) == '"' || (at(i + 1) == '#' && at(i + 2) != '[')) {
            // Raw string r"..." / r#"..."#
            let start_line = line;
            let mut j = i + 1;
            let mut hashes = 0usize;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                // r#ident (a raw identifier)
                i = j;
                continue;
            }
            j += 1;
            let mut s = String::new();
            while j < c.len() {
                if c[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                if c[j] == '\n' {
                    line += 1;
                }
                s.push(c[j]);
                j += 1;
            }
            out.push((Tok::Str(s), start_line));
            i = j;
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            let start_line = line;
            let mut j = if ch == 'b' { i + 2 } else { i + 1 };
            let mut s = String::new();
            while j < c.len() && c[j] != '"' {
                if c[j] == '\\' {
                    j += 1;
                }
                if at(j) == '\n' {
                    line += 1;
                }
                s.push(at(j));
                j += 1;
            }
            out.push((Tok::Str(s), start_line));
            i = j + 1;
        } else if ch == 'b' && at(i + 1) == 'r' && matches!(at(i + 2), '"' | '#') {
            // br"..." : treat as a raw string starting at the 'r'.
            i += 1;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            let j = if ch == 'b' { i + 1 } else { i };
            if at(j + 1) == '\\' {
                // '\n', '\'', '\u{..}': the escaped character, then up to the quote.
                let mut k = j + 3;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
            } else if at(j + 2) == '\'' {
                i = j + 3; // 'x'
            } else {
                i = j + 1; // a lifetime or label: skip the quote, the name follows
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let mut s = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                s.push(c[i]);
                i += 1;
            }
            out.push((Tok::Ident(s), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !at(i + 1).is_ascii_digit() {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is_punct(t: Option<&(Tok, usize)>, p: char) -> bool {
    matches!(t, Some((Tok::Punct(q), _)) if *q == p)
}

fn is_ident(t: Option<&(Tok, usize)>, name: &str) -> bool {
    matches!(t, Some((Tok::Ident(s), _)) if s == name)
}

/// Index just past the item starting at `i`: through its `;` or its matching `}`.
fn skip_item(t: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0i64;
    while i < t.len() {
        match &t[i].0 {
            Tok::Punct('{') | Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct('}') | Tok::Punct(')') | Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 && matches!(t[i].0, Tok::Punct('}')) {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index just past the bracket that closes the one at `open`.
fn matching(t: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0i64;
    for (k, (tok, _)) in t.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('{') | Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct('}') | Tok::Punct(')') | Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// If `t[i..]` is an attribute `#[...]` / `#![...]`, its end index and whether it is
/// exactly `cfg(test)`; also the `path = "..."` value if it is one.
fn attribute(t: &[(Tok, usize)], i: usize) -> Option<(usize, bool, Option<String>)> {
    if !is_punct(t.get(i), '#') {
        return None;
    }
    let open = if is_punct(t.get(i + 1), '!') {
        i + 2
    } else {
        i + 1
    };
    if !is_punct(t.get(open), '[') {
        return None;
    }
    let end = matching(t, open);
    let inner: Vec<&Tok> = t[open + 1..end - 1].iter().map(|(k, _)| k).collect();
    let test = inner
        == [
            &Tok::Ident("cfg".into()),
            &Tok::Punct('('),
            &Tok::Ident("test".into()),
            &Tok::Punct(')'),
        ];
    let path = match inner.as_slice() {
        [Tok::Ident(p), Tok::Punct('='), Tok::Str(s)] if p == "path" => Some(s.clone()),
        _ => None,
    };
    Some((end, test, path))
}

/// A `mod name;` item compiled only under `#[cfg(test)]`, with its `#[path]` if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestModule {
    name: String,
    path: Option<String>,
}

/// What the scan of one file found: violations, and its test-only `mod x;` items.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    violations: Vec<Violation>,
    test_modules: Vec<TestModule>,
}

/// Scans one source text: forbidden words and paths outside `#[cfg(test)]` items.
fn scan(src: &str) -> Scan {
    let t = tokens(src);
    let mut scan = Scan::default();
    // Inner `#![cfg(test)]` at the top: the whole file is test code.
    if let Some((_, true, _)) = attribute(&t, 0) {
        if is_punct(t.get(1), '!') {
            return scan;
        }
    }
    let mut i = 0;
    while i < t.len() {
        if let Some((mut end, mut test, mut path)) = attribute(&t, i) {
            // Further attributes on the same item.
            while let Some((e, tt, p)) = attribute(&t, end) {
                test |= tt;
                path = path.or(p);
                end = e;
            }
            if test {
                let item_end = skip_item(&t, end);
                // `mod name;`: the module's file is test code too.
                if matches!(t.get(item_end - 1), Some((Tok::Punct(';'), _))) {
                    let mut k = end;
                    while k < item_end && !is_ident(t.get(k), "mod") {
                        k += 1;
                    }
                    if let Some((Tok::Ident(name), _)) = t.get(k + 1) {
                        scan.test_modules.push(TestModule {
                            name: name.clone(),
                            path,
                        });
                    }
                }
                i = item_end;
            } else {
                i = end;
            }
            continue;
        }
        let (tok, line) = &t[i];
        if let Tok::Ident(w) = tok {
            if let Some((_, why)) = FORBIDDEN_WORDS.iter().find(|(f, _)| f == w) {
                scan.violations.push(Violation {
                    line: *line,
                    found: w.clone(),
                    why,
                });
            }
            for &(a, b, why) in FORBIDDEN_PAIRS {
                if w != a || !matches!(t.get(i + 1), Some((Tok::Path, _))) {
                    continue;
                }
                // a::b, or a::{.., b, ..} / a::{b::..}
                let mut hit = is_ident(t.get(i + 2), b);
                if is_punct(t.get(i + 2), '{') {
                    let end = matching(&t, i + 2);
                    let mut depth = 0;
                    for k in i + 2..end {
                        match &t[k].0 {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => depth -= 1,
                            Tok::Ident(s) if depth == 1 && s == b => {
                                hit |= is_punct(t.get(k - 1), '{') || is_punct(t.get(k - 1), ',');
                            }
                            _ => {}
                        }
                    }
                }
                if hit {
                    scan.violations.push(Violation {
                        line: *line,
                        found: format!("{a}::{b}"),
                        why,
                    });
                }
            }
            // `super::net` (from src/probe.rs) or `super::super::cli`: the crate root's edge.
            if w == "super" && !is_ident(t.get(i.wrapping_sub(2)), "super") {
                let mut k = i;
                while is_ident(t.get(k), "super") && matches!(t.get(k + 1), Some((Tok::Path, _))) {
                    k += 2;
                }
                if let Some((Tok::Ident(m), _)) = t.get(k) {
                    if matches!(m.as_str(), "net" | "cli" | "io") {
                        scan.violations.push(Violation {
                            line: *line,
                            found: format!("{}{m}", "super::".repeat((k - i) / 2)),
                            why: "the edge (net, cli, io) is not for the core",
                        });
                    }
                }
            }
        }
        i += 1;
    }
    scan
}

/// Every `.rs` file of the core, with the test-only modules left out.
fn core_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for c in CORE {
        let p = src.join(c);
        if p.is_dir() {
            walk(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    files.sort();
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The directory that holds the files of the modules a file declares.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap().to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") | Some("main.rs") => parent,
        _ => parent.join(file.file_stem().unwrap()),
    }
}

/// Violations in the core under `root`, as `file:line: ...` lines.
fn scan_tree(root: &Path) -> Vec<String> {
    let files = core_files(&root.join("src"));
    // Files and directories of test-only modules.
    let mut test_files: Vec<PathBuf> = Vec::new();
    let mut test_dirs: Vec<PathBuf> = Vec::new();
    let mut scans = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let s = scan(&text);
        for m in &s.test_modules {
            match &m.path {
                // `#[path]` is relative to the declaring file's directory.
                Some(p) => test_files.push(f.parent().unwrap().join(p)),
                None => {
                    let dir = module_dir(f);
                    test_files.push(dir.join(format!("{}.rs", m.name)));
                    test_dirs.push(dir.join(&m.name));
                }
            }
        }
        scans.push((f.clone(), s));
    }
    let mut found = Vec::new();
    for (f, s) in scans {
        if test_files.contains(&f) || test_dirs.iter().any(|d| f.starts_with(d)) {
            continue;
        }
        let rel = f.strip_prefix(root).unwrap_or(&f).display().to_string();
        for v in s.violations {
            found.push(format!("{rel}:{}: `{}`: {}", v.line, v.found, v.why));
        }
    }
    found
}

#[test]
fn the_core_uses_no_io_and_nothing_of_the_driver() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = scan_tree(root);
    assert!(
        found.is_empty(),
        "the sans-IO core crosses a layer (docs/architecture.md, \"Layers\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_core_module_is_scanned() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = core_files(&root.join("src"));
    for must in [
        "src/index/build.rs",
        "src/index/persist.rs",
        "src/stream/output.rs",
        "src/pacing/mod.rs",
        "src/sender/mod.rs",
        "src/failover/policy.rs",
        "src/recv/mod.rs",
        "src/failover/wire.rs",
        "src/probe.rs",
        "src/bench/summary.rs",
    ] {
        assert!(files.contains(&root.join(must)), "{must} is not scanned");
    }
}

// ------------------------------------------------------------- the scanner's own tests

fn found(src: &str) -> Vec<(usize, String)> {
    scan(src)
        .violations
        .into_iter()
        .map(|v| (v.line, v.found))
        .collect()
}

#[test]
fn scanner_flags_forbidden_paths_with_their_line() {
    let src = "use std::io::Read;\nuse std::fs::File;\nfn f() { let t = std::time::Instant::now(); }\n\
               use crate::net::url::Dest;\nuse crate::{ts, cli::run};\nfn g() { std::thread::sleep(d); }\n\
               use std::{fs, io};\nuse mio::Poll;\nuse crate::io::load_or_build;\n\
               use super::net::Dest;\nuse super::super::cli;\n";
    assert_eq!(
        found(src),
        vec![
            (2, "fs".to_string()),
            (3, "Instant".to_string()),
            (4, "crate::net".to_string()),
            (5, "crate::cli".to_string()),
            (6, "thread::sleep".to_string()),
            (7, "fs".to_string()),
            (8, "mio".to_string()),
            (9, "crate::io".to_string()),
            (10, "super::net".to_string()),
            (11, "super::super::cli".to_string()),
        ]
    );
}

#[test]
fn scanner_allows_plain_data_comments_strings_and_test_code() {
    let src = r##"
//! Uses std::fs at the edge only; see crate::net.
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
/// A doc comment naming std::time::Instant.
fn f() -> &'static str { let c = '{'; "std::fs::read and {" }
/* a block comment: libc::send, mio */
const R: &str = r#"UdpSocket "quoted" "#;
#[cfg(test)]
mod tests {
    use std::fs;
    fn t() { let _ = std::time::Instant::now(); let s = "}"; }
}
#[cfg(test)]
#[path = "wire_tests.rs"]
mod more;
#[cfg(test)]
mod sim;
#[cfg(not(test))]
fn live() { std::thread::sleep(d) }
"##;
    let s = scan(src);
    assert_eq!(
        s.violations
            .iter()
            .map(|v| (v.line, v.found.as_str()))
            .collect::<Vec<_>>(),
        vec![(20, "thread::sleep")],
        "only the cfg(not(test)) function is live code"
    );
    let names: Vec<_> = s
        .test_modules
        .iter()
        .map(|m| (m.name.as_str(), m.path.as_deref()))
        .collect();
    assert_eq!(names, vec![("more", Some("wire_tests.rs")), ("sim", None)]);
}

#[test]
fn scanner_treats_an_inner_cfg_test_file_as_test_code() {
    assert!(found("#![cfg(test)]\nuse std::fs;\n").is_empty());
}

#[test]
fn scanner_reads_escaped_quote_chars_and_lifetimes() {
    let src = "fn f<'a>(x: &'a str) -> char { let q = '\\''; let b = b'\\\\'; '\\u{7b}' }\nuse std::fs;\n";
    assert_eq!(found(src), vec![(2, "fs".to_string())]);
}
