//! Renames by similar content, as `git diff -M` finds them: a deleted file and an added file
//! whose lines are mostly the same become one rename, shown with its hunks.
//!
//! Similarity is measured as git measures it, by lines: the bytes of the lines both files
//! hold (a line counted as often as both hold it) over the larger file's size, in percent.
//! Candidates are paired best score first, each file used once. The search is bounded: past
//! [`MAX_CANDIDATE_PAIRS`] deleted x added pairs or [`MAX_CANDIDATE_BYTES`] of text, renames
//! are left as deletions and additions (git has the same kind of limit, `diff.renameLimit`).

use std::hash::{Hash, Hasher};

use super::treediff::{Change, Entry, Kind};

/// Deleted x added files compared at most.
pub const MAX_CANDIDATE_PAIRS: usize = 1_000_000;
/// Bytes of candidate text read at most.
pub const MAX_CANDIDATE_BYTES: u64 = 256 << 20;

/// A file's lines: (hash, length) with how often each occurs, sorted by hash.
struct Lines {
    len: u64,
    lines: Vec<(u64, u32, u32)>,
}

impl Lines {
    fn of(bytes: &[u8]) -> Self {
        let mut v: Vec<(u64, u32)> = bytes
            .split_inclusive(|&b| b == b'\n')
            .map(|l| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                l.hash(&mut h);
                (h.finish(), l.len() as u32)
            })
            .collect();
        v.sort_unstable();
        let mut lines: Vec<(u64, u32, u32)> = Vec::new();
        for (h, len) in v {
            match lines.last_mut() {
                Some(last) if last.0 == h => last.2 += 1,
                _ => lines.push((h, len, 1)),
            }
        }
        Self {
            len: bytes.len() as u64,
            lines,
        }
    }

    /// Similarity with `o`, percent.
    fn similarity(&self, o: &Lines) -> u8 {
        let (mut i, mut j, mut common) = (0, 0, 0u64);
        while i < self.lines.len() && j < o.lines.len() {
            let (a, b) = (self.lines[i], o.lines[j]);
            match a.0.cmp(&b.0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += a.1 as u64 * a.2.min(b.2) as u64;
                    i += 1;
                    j += 1;
                }
            }
        }
        (common * 100 / self.len.max(o.len).max(1)).min(100) as u8
    }
}

/// Files and links pair only with their own kind (a link's content is a path).
fn class(k: Kind) -> Option<bool> {
    match k {
        Kind::File | Kind::Executable => Some(false),
        Kind::Symlink => Some(true),
        _ => None,
    }
}

/// One change with the similarity of its sides (100 unless a rename found here).
pub struct Scored {
    /// The change.
    pub change: Change,
    /// Similarity of a rename, percent.
    pub similarity: u8,
}

/// `changes` with deleted and added files at least `threshold`% similar paired as renames
/// (`threshold` 0: none); `text` gives a side's bytes when they can be read as text. The
/// second value says why the search was left out, when it was.
pub fn pair(
    changes: Vec<Change>,
    threshold: u8,
    text: impl Fn(&Entry) -> Option<Vec<u8>>,
) -> (Vec<Scored>, Option<String>) {
    let keep = |changes: Vec<Change>| {
        changes
            .into_iter()
            .map(|change| Scored {
                change,
                similarity: 100,
            })
            .collect()
    };
    fn side(c: &Change, deleted: bool) -> Option<(&Entry, bool)> {
        match (c, deleted) {
            (Change::Deleted(e), true) | (Change::Added(e), false) => class(e.kind).map(|k| (e, k)),
            _ => None,
        }
    }
    let dels: Vec<usize> = (0..changes.len())
        .filter(|&i| side(&changes[i], true).is_some())
        .collect();
    let adds: Vec<usize> = (0..changes.len())
        .filter(|&i| side(&changes[i], false).is_some())
        .collect();
    if threshold == 0 || dels.is_empty() || adds.is_empty() {
        return (keep(changes), None);
    }
    if dels.len().saturating_mul(adds.len()) > MAX_CANDIDATE_PAIRS {
        let why = format!(
            "renames by similarity not searched: {} deleted x {} added files",
            dels.len(),
            adds.len()
        );
        return (keep(changes), Some(why));
    }
    let read = std::cell::Cell::new(0u64);
    let load = |i: usize, deleted: bool| -> Option<(Lines, bool)> {
        let (e, k) = side(&changes[i], deleted)?;
        let bytes = text(e)?;
        read.set(read.get() + bytes.len() as u64);
        // Empty files are alike in nothing (git does not pair them either).
        (!bytes.is_empty()).then(|| (Lines::of(&bytes), k))
    };
    // (change index, its lines, whether it is a link), per side.
    type Candidates = Vec<(usize, Lines, bool)>;
    let (mut old, mut new): (Candidates, Candidates) = Default::default();
    // Deletions, then additions; the byte budget is checked as they are read.
    for (i, deleted) in dels
        .iter()
        .map(|&i| (i, true))
        .chain(adds.iter().map(|&i| (i, false)))
    {
        if let Some((l, k)) = load(i, deleted) {
            if deleted { &mut old } else { &mut new }.push((i, l, k));
        }
        if read.get() > MAX_CANDIDATE_BYTES {
            let why = format!(
                "renames by similarity not searched: more than {MAX_CANDIDATE_BYTES} bytes of candidates"
            );
            return (keep(changes), Some(why));
        }
    }
    let mut found: Vec<(u8, usize, usize)> = Vec::new();
    for (d, dl, dk) in &old {
        for (a, al, ak) in &new {
            let (lo, hi) = (dl.len.min(al.len), dl.len.max(al.len));
            // The smaller file cannot share more than its own size.
            if dk != ak || lo * 100 < hi * threshold as u64 {
                continue;
            }
            let s = dl.similarity(al);
            if s >= threshold {
                found.push((s, *d, *a));
            }
        }
    }
    // Best first; ties in change order, so that the result does not depend on hashing.
    found.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut partner: Vec<Option<(usize, u8)>> = vec![None; changes.len()];
    let mut used = vec![false; changes.len()];
    for (s, d, a) in found {
        if !used[d] && !used[a] {
            used[d] = true;
            used[a] = true;
            partner[a] = Some((d, s));
        }
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for i in 0..slots.len() {
        if let Some((d, s)) = partner[i] {
            if let (Some(Change::Deleted(old)), Some(Change::Added(new))) =
                (slots[d].take(), slots[i].take())
            {
                out.push(Scored {
                    change: Change::Renamed { old, new },
                    similarity: s,
                });
            }
        } else if used[i] {
            // A deletion paired with a later addition: emitted there.
        } else if let Some(change) = slots[i].take() {
            out.push(Scored {
                change,
                similarity: 100,
            });
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, node: usize) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            node,
            kind: Kind::File,
        }
    }

    #[test]
    fn similar_files_pair_and_others_stay_apart() {
        let base: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let edited = base.replace("line 7\n", "seven\n");
        let other: String = (0..20).map(|i| format!("other {i}\n")).collect();
        let texts = [base.clone(), edited, other.clone(), other.clone() + "x\n"];
        let changes = vec![
            Change::Deleted(entry("a/old.txt", 0)),
            Change::Added(entry("b/new.txt", 1)),
            Change::Added(entry("c/unrelated.txt", 3)),
            Change::Deleted(entry("z/unrelated.txt", 2)),
        ];
        let (out, note) = pair(changes, 50, |e| Some(texts[e.node].clone().into_bytes()));
        assert!(note.is_none());
        assert_eq!(out.len(), 2, "two renames");
        match &out[0].change {
            Change::Renamed { old, new } => {
                assert_eq!((old.node, new.node), (0, 1));
                assert_eq!(out[0].similarity, 95);
            }
            c => panic!("{c:?}"),
        }
        assert!(matches!(&out[1].change, Change::Renamed { old, .. } if old.node == 2));
        // Above the threshold only.
        let changes = vec![Change::Deleted(entry("a", 0)), Change::Added(entry("b", 2))];
        let (out, _) = pair(changes, 50, |e| Some(texts[e.node].clone().into_bytes()));
        assert!(matches!(out[0].change, Change::Deleted(_)));
        assert!(matches!(out[1].change, Change::Added(_)));
    }

    #[test]
    fn similarity_counts_repeated_lines_once_per_pair() {
        let a = Lines::of(b"x\nx\nx\ny\n");
        let b = Lines::of(b"x\ny\n");
        assert_eq!(a.similarity(&b), 50);
        assert_eq!(Lines::of(b"").similarity(&Lines::of(b"")), 0);
    }
}
