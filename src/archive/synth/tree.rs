//! File trees of synthetic repositories, persistent as git's: a commit changes a few files
//! and copies only the folders on their paths, every other subtree is shared (same node,
//! same id). Ids are computed once per node; objects are emitted once per node.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::archive::git::DirEntry;
use crate::model::hashes::{git_object_id, ContentHashes, Sha1Id};

use super::content::{self, Spec};
use super::names::{Name, Names};

/// A blob and, once hashed, its hashes.
#[derive(Debug)]
pub struct Blob {
    /// What makes its bytes.
    pub spec: Spec,
    hashes: OnceCell<Box<ContentHashes>>,
    emitted: Cell<bool>,
}

impl Blob {
    /// A blob made of `spec`.
    pub fn new(spec: Spec) -> Rc<Self> {
        Rc::new(Self {
            spec,
            hashes: OnceCell::new(),
            emitted: Cell::new(false),
        })
    }

    /// Its git id (hashing it if needed).
    pub fn sha1_git(&self) -> Sha1Id {
        self.hashes
            .get_or_init(|| Box::new(content::hashes(&self.spec)))
            .sha1_git
    }

    /// Every hash (hashing it if needed).
    pub fn hashes(&self) -> &ContentHashes {
        self.hashes
            .get_or_init(|| Box::new(content::hashes(&self.spec)))
    }
}

/// An entry of a folder.
#[derive(Debug, Clone)]
pub enum Node {
    /// A regular (or executable) file.
    File(Rc<Blob>, bool),
    /// A symbolic link (its blob holds the target).
    Link(Rc<Blob>),
    /// A folder.
    Dir(Rc<Dir>),
    /// A submodule: a commit of another repository.
    Gitlink(Rc<Sha1Id>),
}

impl Node {
    /// Files below (links count, submodules do not).
    fn files(&self) -> u32 {
        match self {
            Node::File(..) | Node::Link(_) => 1,
            Node::Dir(d) => d.files,
            Node::Gitlink(_) => 0,
        }
    }

    /// Git's mode and the export's entry type.
    fn mode(&self) -> (u32, &'static str) {
        match self {
            Node::File(_, false) => (0o100644, "file"),
            Node::File(_, true) => (0o100755, "file"),
            Node::Link(_) => (0o120000, "file"),
            Node::Dir(_) => (0o040000, "dir"),
            Node::Gitlink(_) => (0o160000, "rev"),
        }
    }
}

/// A folder: entries sorted by name id, the files below it, and its id once computed.
#[derive(Debug, Default)]
pub struct Dir {
    entries: Vec<(Name, Node)>,
    files: u32,
    id: OnceCell<Sha1Id>,
    emitted: Cell<bool>,
}

impl Clone for Dir {
    /// A copy to be changed: its id and emission are its own.
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            files: self.files,
            id: OnceCell::new(),
            emitted: Cell::new(false),
        }
    }
}

/// What a path leads to in a tree, as the path walk reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No such entry (or a file walked through).
    NotFound,
    /// A folder.
    Dir,
    /// A submodule on the way.
    Submodule,
    /// A file, with its git id.
    File(Sha1Id),
    /// A symbolic link, with its blob's git id.
    Link(Sha1Id),
}

impl Dir {
    /// An empty folder.
    pub fn empty() -> Rc<Dir> {
        Rc::new(Dir::default())
    }

    /// Files below.
    pub fn files(&self) -> u32 {
        self.files
    }

    /// The entry named `name`.
    pub fn get(&self, name: Name) -> Option<&Node> {
        self.entries
            .binary_search_by_key(&name, |e| e.0)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The names of the entries.
    pub fn names(&self) -> impl Iterator<Item = Name> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    /// Sets (`Some`) or removes (`None`) the entry at `path`, creating folders on the way and
    /// dropping the ones left empty; copies only the folders on the path.
    pub fn set(dir: &mut Rc<Dir>, path: &[Name], node: Option<Node>) {
        let Some((&first, rest)) = path.split_first() else {
            return;
        };
        let d = Rc::make_mut(dir);
        d.id = OnceCell::new();
        d.emitted = Cell::new(false);
        let at = d.entries.binary_search_by_key(&first, |e| e.0);
        if rest.is_empty() {
            match (at, node) {
                (Ok(i), Some(n)) => d.entries[i].1 = n,
                (Err(i), Some(n)) => d.entries.insert(i, (first, n)),
                (Ok(i), None) => {
                    d.entries.remove(i);
                }
                (Err(_), None) => {}
            }
        } else {
            let i = match at {
                Ok(i) if matches!(d.entries[i].1, Node::Dir(_)) => i,
                Ok(i) => {
                    if node.is_none() {
                        return d.recount();
                    }
                    d.entries[i].1 = Node::Dir(Dir::empty());
                    i
                }
                Err(i) => {
                    if node.is_none() {
                        return d.recount();
                    }
                    d.entries.insert(i, (first, Node::Dir(Dir::empty())));
                    i
                }
            };
            if let Node::Dir(sub) = &mut d.entries[i].1 {
                Dir::set(sub, rest, node);
                if sub.entries.is_empty() {
                    d.entries.remove(i);
                }
            }
        }
        d.recount();
    }

    fn recount(&mut self) {
        self.files = self.entries.iter().map(|e| e.1.files()).sum();
    }

    /// The path of a file drawn uniformly among the files below.
    pub fn pick_file(&self, rng: &mut ChaCha8Rng) -> Option<Vec<Name>> {
        if self.files == 0 {
            return None;
        }
        let mut r = rng.random_range(0..self.files);
        let mut path = Vec::new();
        let mut dir = self;
        'down: loop {
            for (name, node) in &dir.entries {
                let f = node.files();
                if r < f {
                    path.push(*name);
                    match node {
                        Node::Dir(sub) => {
                            dir = sub;
                            continue 'down;
                        }
                        _ => return Some(path),
                    }
                }
                r -= f;
            }
            return None;
        }
    }

    /// Entries of this folder (files, links and subfolders).
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// A folder drawn by a walk from the root: at each level it stops with probability
    /// 0.35, or goes down into a subfolder drawn by its number of files.
    pub fn pick_dir(&self, rng: &mut ChaCha8Rng) -> Vec<Name> {
        let mut path = Vec::new();
        let mut dir = self;
        loop {
            let subs: Vec<(Name, &Rc<Dir>)> = dir
                .entries
                .iter()
                .filter_map(|(n, node)| match node {
                    Node::Dir(d) => Some((*n, d)),
                    _ => None,
                })
                .collect();
            if subs.is_empty() || rng.random_bool(0.35) {
                return path;
            }
            let total: u64 = subs.iter().map(|(_, d)| d.files as u64 + 1).sum();
            let mut r = rng.random_range(0..total);
            for (n, d) in subs {
                let w = d.files as u64 + 1;
                if r < w {
                    path.push(n);
                    dir = d;
                    break;
                }
                r -= w;
            }
        }
    }

    /// The folder at `path`, if there is one.
    pub fn dir_at(&self, path: &[Name]) -> Option<&Dir> {
        let mut dir = self;
        for n in path {
            match dir.get(*n)? {
                Node::Dir(d) => dir = d,
                _ => return None,
            }
        }
        Some(dir)
    }

    /// The node at `path`.
    pub fn node_at(&self, path: &[Name]) -> Option<&Node> {
        let (last, up) = path.split_last()?;
        self.dir_at(up)?.get(*last)
    }

    /// What `path` (components as bytes) leads to, as the path walk decides it.
    pub fn lookup(&self, names: &Names, path: &[&[u8]]) -> Lookup {
        let mut dir = self;
        for (i, comp) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let Some(node) = names.get(comp).and_then(|n| dir.get(n)) else {
                return Lookup::NotFound;
            };
            match node {
                Node::Dir(d) if !last => dir = d,
                Node::Dir(_) => return Lookup::Dir,
                Node::Gitlink(_) => return Lookup::Submodule,
                Node::File(b, _) if last => return Lookup::File(b.sha1_git()),
                Node::Link(b) if last => return Lookup::Link(b.sha1_git()),
                _ => return Lookup::NotFound,
            }
        }
        Lookup::NotFound
    }

    /// The folder's id, computing what is missing below it; blobs not yet hashed are hashed
    /// in parallel first.
    pub fn id(self: &Rc<Dir>, names: &Names) -> Sha1Id {
        if let Some(id) = self.id.get() {
            return *id;
        }
        let mut blobs = Vec::new();
        self.unhashed(&mut blobs, &mut std::collections::HashSet::new());
        let specs: Vec<Spec> = blobs.iter().map(|b| b.spec.clone()).collect();
        let hashes: Vec<ContentHashes> = if specs.len() > 8 {
            specs.par_iter().map(content::hashes).collect()
        } else {
            specs.iter().map(content::hashes).collect()
        };
        for (b, h) in blobs.iter().zip(hashes) {
            let _ = b.hashes.set(Box::new(h));
        }
        self.compute_id(names)
    }

    fn unhashed(&self, out: &mut Vec<Rc<Blob>>, seen: &mut std::collections::HashSet<*const Blob>) {
        if self.id.get().is_some() {
            return;
        }
        for (_, node) in &self.entries {
            match node {
                Node::File(b, _) | Node::Link(b)
                    if b.hashes.get().is_none() && seen.insert(Rc::as_ptr(b)) =>
                {
                    out.push(b.clone());
                }
                Node::Dir(d) => d.unhashed(out, seen),
                _ => {}
            }
        }
    }

    fn compute_id(&self, names: &Names) -> Sha1Id {
        if let Some(id) = self.id.get() {
            return *id;
        }
        let mut body = Vec::new();
        for (name, node, target) in self.git_order(names) {
            let (mode, _) = node.mode();
            body.extend_from_slice(format!("{mode:o} ").as_bytes());
            body.extend_from_slice(names.bytes(name));
            body.push(0);
            body.extend_from_slice(&target);
        }
        let id = git_object_id("tree", &body);
        let _ = self.id.set(id);
        id
    }

    /// Entries in git's tree order (folders compare as if their name ended in `/`), with
    /// their target ids.
    fn git_order(&self, names: &Names) -> Vec<(Name, &Node, Sha1Id)> {
        let mut out: Vec<(Name, &Node, Sha1Id)> = self
            .entries
            .iter()
            .map(|(n, node)| {
                let target = match node {
                    Node::File(b, _) | Node::Link(b) => b.sha1_git(),
                    Node::Dir(d) => d.compute_id(names),
                    Node::Gitlink(id) => **id,
                };
                (*n, node, target)
            })
            .collect();
        let key = |n: Name, node: &Node| {
            let mut k = names.bytes(n).to_vec();
            if matches!(node, Node::Dir(_)) {
                k.push(b'/');
            }
            k
        };
        out.sort_by_cached_key(|e| key(e.0, e.1));
        out
    }

    /// Emits every folder and blob below (and this folder) not emitted yet, children first.
    /// The folder's id must have been computed.
    pub fn emit(
        &self,
        names: &Names,
        out: &mut impl Emit,
    ) -> Result<(), crate::archive::ArchiveError> {
        if self.emitted.get() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(self.entries.len());
        for (name, node, target) in self.git_order(names) {
            match node {
                Node::Dir(d) => d.emit(names, out)?,
                Node::File(b, _) | Node::Link(b) if !b.emitted.get() => {
                    out.content(b.hashes(), &b.spec)?;
                    b.emitted.set(true);
                }
                _ => {}
            }
            let (perms, kind) = node.mode();
            entries.push(DirEntry {
                name: names.bytes(name).to_vec(),
                kind,
                target,
                perms,
            });
        }
        out.directory(self.compute_id(names), &entries)?;
        self.emitted.set(true);
        Ok(())
    }
}

/// Where emitted objects go (the archive's tables in the first pass).
pub trait Emit {
    /// A blob.
    fn content(
        &mut self,
        hashes: &ContentHashes,
        spec: &Spec,
    ) -> Result<(), crate::archive::ArchiveError>;
    /// A folder.
    fn directory(
        &mut self,
        id: Sha1Id,
        entries: &[DirEntry],
    ) -> Result<(), crate::archive::ArchiveError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::synth::content::Kind;
    use rand::SeedableRng;

    fn blob(seed: u64) -> Node {
        Node::File(
            Blob::new(Spec {
                seed,
                len: 10,
                kind: Kind::Text,
            }),
            false,
        )
    }

    #[test]
    fn changes_copy_only_their_path_and_ids_follow_git() {
        let mut names = Names::default();
        let [a, b, c, d] = [&b"a"[..], b"b", b"c.txt", b"d.txt"].map(|n| names.intern(n));
        let mut root = Dir::empty();
        Dir::set(&mut root, &[a, c], Some(blob(1)));
        Dir::set(&mut root, &[b, d], Some(blob(2)));
        Dir::set(&mut root, &[d], Some(blob(3)));
        assert_eq!(root.files(), 3);
        let before = root.clone();
        let id_before = before.id(&names);
        Dir::set(&mut root, &[a, c], Some(blob(4)));
        // The untouched folder is the same node; the old root kept its id.
        let (Some(Node::Dir(b1)), Some(Node::Dir(b2))) = (before.get(b), root.get(b)) else {
            panic!("folders")
        };
        assert!(Rc::ptr_eq(b1, b2));
        assert_eq!(before.id(&names), id_before);
        assert_ne!(root.id(&names), id_before);
        // Removing the last file of a folder removes the folder.
        Dir::set(&mut root, &[a, c], None);
        assert!(root.get(a).is_none());
        assert_eq!(root.files(), 2);
        assert_eq!(
            root.lookup(&names, &[b"b", b"d.txt"]),
            Lookup::File(match root.node_at(&[b, d]) {
                Some(Node::File(x, _)) => x.sha1_git(),
                _ => panic!(),
            })
        );
        assert_eq!(root.lookup(&names, &[b"b"]), Lookup::Dir);
        assert_eq!(root.lookup(&names, &[b"d.txt", b"x"]), Lookup::NotFound);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let p = root.pick_file(&mut rng).unwrap();
            assert!(matches!(root.node_at(&p), Some(Node::File(..))));
        }
    }

    #[test]
    fn tree_ids_match_git() {
        // A root with an empty file `a.txt` and a folder `a` holding the same file.
        let mut names = Names::default();
        let (a, at) = (names.intern(b"a"), names.intern(b"a.txt"));
        let empty = Node::File(
            Blob::new(Spec {
                seed: 0,
                len: 0,
                kind: Kind::Text,
            }),
            false,
        );
        let mut root = Dir::empty();
        Dir::set(&mut root, &[at], Some(empty.clone()));
        Dir::set(&mut root, &[a, at], Some(empty));
        let sub = match root.get(a) {
            Some(Node::Dir(d)) => d.clone(),
            _ => panic!(),
        };
        let hexid = |id: Sha1Id| crate::model::hashes::hex(&id);
        // From `git mktree` (the empty blob is e69de29...).
        assert_eq!(
            hexid(sub.id(&names)),
            "65a457425a679cbe9adf0d2741785d3ceabb44a7"
        );
        assert_eq!(
            hexid(root.id(&names)),
            "99496a92e08b42e8e8454b8c40dc502a82701d0d"
        );
        // `a.txt` sorts before `a/` in git's order: "a.txt" < "a/" since '.' < '/'.
        let order: Vec<Name> = root.git_order(&names).iter().map(|e| e.0).collect();
        assert_eq!(order, [at, a]);
    }
}
