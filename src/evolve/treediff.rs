//! Two trees compared by node identity: both roots walked together, descending only where
//! the directory ids differ. A directory with the same id on both sides is the same tree
//! (its id hashes everything below it), so it is counted as skipped and never decoded.

use swh_graph::labels::{EdgeLabel, Permission};
use swh_graph::NodeType;

use crate::graph::HistoryGraph;

/// What a tree entry is, from its git mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A regular file (100644).
    File,
    /// An executable file (100755).
    Executable,
    /// A symbolic link (120000); its content is the target.
    Symlink,
    /// A directory (040000).
    Directory,
    /// A submodule (160000): a revision, not stored in the tree.
    Submodule,
}

impl Kind {
    fn of(perm: Option<Permission>, node_type: NodeType) -> Self {
        match (perm, node_type) {
            (_, NodeType::Directory) => Kind::Directory,
            (_, NodeType::Revision) => Kind::Submodule,
            (Some(Permission::ExecutableContent), _) => Kind::Executable,
            (Some(Permission::Symlink), _) => Kind::Symlink,
            _ => Kind::File,
        }
    }

    /// The git mode, as `git diff` prints it.
    pub fn mode(self) -> &'static str {
        match self {
            Kind::File => "100644",
            Kind::Executable => "100755",
            Kind::Symlink => "120000",
            Kind::Directory => "040000",
            Kind::Submodule => "160000",
        }
    }

    /// Whether a change from `self` to `other` is a mode change git writes in place (regular
    /// and executable files), not a change of type.
    pub fn same_type(self, other: Kind) -> bool {
        let file = |k| matches!(k, Kind::File | Kind::Executable);
        self == other || (file(self) && file(other))
    }

    /// Whether the entry has bytes of its own (files and links).
    pub fn has_content(self) -> bool {
        matches!(self, Kind::File | Kind::Executable | Kind::Symlink)
    }
}

/// One file (or link, or submodule) of a tree, by full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path from the root, `/`-separated, as stored (bytes).
    pub path: Vec<u8>,
    /// Its node.
    pub node: usize,
    /// What it is.
    pub kind: Kind,
}

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the new tree.
    Added(Entry),
    /// Only in the old tree.
    Deleted(Entry),
    /// At the same path on both sides, with other content or another mode.
    Modified {
        /// Before.
        old: Entry,
        /// After.
        new: Entry,
    },
    /// The same content at another path (the mode may differ).
    Renamed {
        /// Before.
        old: Entry,
        /// After.
        new: Entry,
    },
}

impl Change {
    /// The entry before and the entry after (none for an addition's before, a deletion's
    /// after).
    pub fn sides(&self) -> (Option<&Entry>, Option<&Entry>) {
        match self {
            Change::Added(e) => (None, Some(e)),
            Change::Deleted(e) => (Some(e), None),
            Change::Modified { old, new } | Change::Renamed { old, new } => (Some(old), Some(new)),
        }
    }

    /// The path the change is sorted and filtered by (the new one, when there is one).
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Added(e) | Change::Deleted(e) => &e.path,
            Change::Modified { new, .. } | Change::Renamed { new, .. } => &new.path,
        }
    }
}

/// Entries one listing or one diff yields at most. A tree is a DAG: a folder may hold the
/// same subfolder under many names, so a hostile tree of a few hundred nodes can unfold into
/// more paths than memory holds; past this, the walk stops and says so.
pub const MAX_ENTRIES: usize = 4 << 20;

/// What the walks read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkCounts {
    /// Directories whose entries were decoded.
    pub decoded: u64,
    /// Directories equal on both sides, not decoded.
    pub skipped: u64,
    /// Whether a walk stopped at [`MAX_ENTRIES`] (its result is incomplete).
    pub over_cap: bool,
}

impl WalkCounts {
    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &WalkCounts) {
        self.decoded += o.decoded;
        self.skipped += o.skipped;
        self.over_cap |= o.over_cap;
    }
}

/// The entries of directory `dir`: (name, node, kind), sorted by name.
fn entries(
    graph: &impl HistoryGraph,
    dir: usize,
    counts: &mut WalkCounts,
) -> Vec<(Vec<u8>, usize, Kind)> {
    counts.decoded += 1;
    let props = graph.properties();
    let mut out = Vec::new();
    for (succ, labels) in graph.labeled_successors(dir) {
        let node_type = props.node_type(succ);
        for l in labels {
            if let EdgeLabel::DirEntry(e) = l {
                let name = props.label_name(e.label_name_id());
                out.push((name, succ, Kind::of(e.permission(), node_type)));
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        p.extend_from_slice(prefix);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Every non-directory entry below `dir`, its paths under `prefix`, in path order.
pub fn list(
    graph: &impl HistoryGraph,
    dir: usize,
    prefix: &[u8],
    counts: &mut WalkCounts,
) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![(prefix.to_vec(), dir)];
    while let Some((prefix, dir)) = stack.pop() {
        if out.len() >= MAX_ENTRIES {
            counts.over_cap = true;
            break;
        }
        for (name, node, kind) in entries(graph, dir, counts) {
            let path = join(&prefix, &name);
            if kind == Kind::Directory {
                stack.push((path, node));
            } else {
                out.push(Entry { path, node, kind });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The changes from tree `old` to tree `new` (root directories), in path order; renames are
/// deletions and additions of the same content, paired in path order.
pub fn diff(
    graph: &impl HistoryGraph,
    old: usize,
    new: usize,
    counts: &mut WalkCounts,
) -> Vec<Change> {
    let mut added = Vec::new();
    let mut deleted = Vec::new();
    let mut modified = Vec::new();
    let mut stack = vec![(Vec::new(), old, new)];
    if old == new {
        counts.skipped += 1;
        stack.clear();
    }
    while let Some((prefix, a, b)) = stack.pop() {
        if added.len() + deleted.len() + modified.len() >= MAX_ENTRIES || counts.over_cap {
            counts.over_cap = true;
            break;
        }
        let (ea, eb) = (entries(graph, a, counts), entries(graph, b, counts));
        let (mut i, mut j) = (0, 0);
        while i < ea.len() || j < eb.len() {
            let ord = match (ea.get(i), eb.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let gone = |e: &(Vec<u8>, usize, Kind), out: &mut Vec<Entry>, c: &mut WalkCounts| {
                let path = join(&prefix, &e.0);
                if e.2 == Kind::Directory {
                    out.extend(list(graph, e.1, &path, c));
                } else {
                    out.push(Entry {
                        path,
                        node: e.1,
                        kind: e.2,
                    });
                }
            };
            match ord {
                std::cmp::Ordering::Less => {
                    gone(&ea[i], &mut deleted, counts);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    gone(&eb[j], &mut added, counts);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&ea[i], &eb[j]);
                    let path = join(&prefix, &x.0);
                    match (x.2 == Kind::Directory, y.2 == Kind::Directory) {
                        (true, true) if x.1 == y.1 => counts.skipped += 1,
                        (true, true) => stack.push((path, x.1, y.1)),
                        (false, false) if x.1 == y.1 && x.2 == y.2 => {}
                        // A file and an executable differ by mode; a file and a link (or a
                        // submodule) differ in type, which git writes as a deletion and an
                        // addition.
                        (false, false) if x.2.same_type(y.2) => modified.push(Change::Modified {
                            old: Entry {
                                path: path.clone(),
                                node: x.1,
                                kind: x.2,
                            },
                            new: Entry {
                                path,
                                node: y.1,
                                kind: y.2,
                            },
                        }),
                        _ => {
                            gone(x, &mut deleted, counts);
                            gone(y, &mut added, counts);
                        }
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    let mut changes = pair_renames(added, deleted);
    changes.extend(modified);
    // Path order, and at one path (a change of type) the deletion first, as git writes it.
    changes.sort_by(|a, b| {
        let added = |c: &Change| !matches!(c, Change::Deleted(_));
        a.path().cmp(b.path()).then(added(a).cmp(&added(b)))
    });
    changes
}

/// Pairs each deleted file with an added one of the same content (files and links apart),
/// in path order; the rest stay additions and deletions.
fn pair_renames(added: Vec<Entry>, mut deleted: Vec<Entry>) -> Vec<Change> {
    use std::collections::HashMap;
    deleted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut by_node: HashMap<(usize, bool), Vec<usize>> = HashMap::new();
    for (k, d) in deleted.iter().enumerate().rev() {
        if d.kind.has_content() {
            by_node
                .entry((d.node, d.kind == Kind::Symlink))
                .or_default()
                .push(k);
        }
    }
    let mut taken = vec![false; deleted.len()];
    let mut added = added;
    added.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = Vec::new();
    for a in added {
        let key = (a.node, a.kind == Kind::Symlink);
        match by_node
            .get_mut(&key)
            .and_then(Vec::pop)
            .filter(|_| a.kind.has_content())
        {
            Some(k) => {
                taken[k] = true;
                out.push(Change::Renamed {
                    old: deleted[k].clone(),
                    new: a,
                });
            }
            None => out.push(Change::Added(a)),
        }
    }
    out.extend(
        deleted
            .into_iter()
            .zip(taken)
            .filter(|(_, t)| !t)
            .map(|(d, _)| Change::Deleted(d)),
    );
    out
}
