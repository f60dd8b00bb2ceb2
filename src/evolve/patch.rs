//! One file's change as `git diff` prints it, so that `git apply` accepts the whole patch.
//!
//! Hunks come from `similar` (Myers, three lines of context, `\ No newline at end of file`
//! where a side lacks its last newline); headers follow git: `diff --git`, `new file mode`,
//! `deleted file mode`, `old mode`/`new mode`, `similarity index N%` with `rename from`/
//! `rename to`, `index` with abbreviated blob ids, and paths quoted as git quotes them.

use std::fmt::Write;

use similar::{Algorithm, TextDiff};

use super::treediff::Entry;

/// A side of a change: its entry, its blob id, and its text.
pub struct Side<'a> {
    /// The tree entry.
    pub entry: &'a Entry,
    /// Its git blob id, hex.
    pub id: &'a str,
    /// Its bytes, as text.
    pub text: &'a str,
}

/// `path` as git prints it in headers: quoted with C escapes (and octal for bytes outside
/// printable ASCII) when it holds a quote, a backslash, a control byte or a non-ASCII byte.
pub fn quote(prefix: &str, path: &[u8]) -> String {
    let plain = path
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        return format!("{prefix}{}", String::from_utf8_lossy(path));
    }
    let mut s = String::from("\"");
    s.push_str(prefix);
    for &b in path {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            b'\r' => s.push_str("\\r"),
            0x20..0x7f => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:03o}");
            }
        }
    }
    s.push('"');
    s
}

fn short(id: &str) -> &str {
    &id[..id.len().min(7)]
}

const NULL_ID: &str = "0000000";

/// Appends to `out` the hunks from `old` to `new` (`---`/`+++` lines included), nothing
/// when both texts are equal.
fn hunks(out: &mut String, old_name: &str, new_name: &str, old: &str, new: &str) {
    if old == new {
        return;
    }
    // A deadline keeps a rewritten large file from costing O(N*D): past it the diff is
    // still right, only less minimal.
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(std::time::Duration::from_secs(2))
        .diff_lines(old, new);
    let _ = writeln!(out, "--- {old_name}\n+++ {new_name}");
    let mut unified = diff.unified_diff();
    unified.context_radius(3).missing_newline_hint(true);
    for hunk in unified.iter_hunks() {
        let _ = write!(out, "{hunk}");
    }
}

/// The patch of one change: `old` and/or `new` (both for a modification or a rename, whose
/// `similarity` the header states).
pub fn patch(out: &mut String, old: Option<&Side>, new: Option<&Side>, similarity: u8) {
    let (a_path, b_path) = match (old, new) {
        (Some(o), Some(n)) => (&o.entry.path, &n.entry.path),
        (Some(o), None) => (&o.entry.path, &o.entry.path),
        (None, Some(n)) => (&n.entry.path, &n.entry.path),
        (None, None) => return,
    };
    let _ = writeln!(
        out,
        "diff --git {} {}",
        quote("a/", a_path),
        quote("b/", b_path)
    );
    match (old, new) {
        (None, Some(n)) => {
            let _ = writeln!(out, "new file mode {}", n.entry.kind.mode());
            let _ = writeln!(out, "index {NULL_ID}..{}", short(n.id));
            hunks(out, "/dev/null", &quote("b/", b_path), "", n.text);
        }
        (Some(o), None) => {
            let _ = writeln!(out, "deleted file mode {}", o.entry.kind.mode());
            let _ = writeln!(out, "index {}..{NULL_ID}", short(o.id));
            hunks(out, &quote("a/", a_path), "/dev/null", o.text, "");
        }
        (Some(o), Some(n)) => {
            let (om, nm) = (o.entry.kind.mode(), n.entry.kind.mode());
            if om != nm {
                let _ = writeln!(out, "old mode {om}\nnew mode {nm}");
            }
            if a_path != b_path {
                let _ = writeln!(
                    out,
                    "similarity index {similarity}%\nrename from {}\nrename to {}",
                    quote("", a_path),
                    quote("", b_path)
                );
            }
            if o.id != n.id {
                if om == nm {
                    let _ = writeln!(out, "index {}..{} {om}", short(o.id), short(n.id));
                } else {
                    let _ = writeln!(out, "index {}..{}", short(o.id), short(n.id));
                }
                hunks(
                    out,
                    &quote("a/", a_path),
                    &quote("b/", b_path),
                    o.text,
                    n.text,
                );
            }
        }
        (None, None) => {}
    }
}
