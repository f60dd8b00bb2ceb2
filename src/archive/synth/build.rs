//! The first pass: plays each family and writes what its visits archive straight into the
//! export tables, the way SWH's loader would have: a visit archives every object its
//! snapshot reaches that no earlier visit archived. What no visit reaches (commits made after
//! the last visit) is never written.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::archive::git::{DirEntry, GitDate, ObjectSink, Release, Revision, Signature};
use crate::archive::writer::ArchiveWriter;
use crate::archive::{tables, write_snapshot, write_visit, ArchiveError};
use crate::model::hashes::{
    git_object_id, hex, origin_id, snapshot_id, BranchTarget, ContentHashes, Sha1Id,
};

use super::content::{self, Spec};
use super::family::{CommitEvent, Observer, TagEvent, Target, VisitEvent, NONE};
use super::names::Names;
use super::tree::{Dir, Emit};
use super::world::{FamilyModel, Head, VisitModel, World};

/// Whether every blob is stored, or none (the rows' blobs are stored at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBlobs {
    /// Every archived blob.
    All,
    /// None while building.
    None,
}

/// The archive's writer, with the ids already written (so that an object shared by two
/// families, or made twice, is written once) and node counts.
pub struct Sink {
    /// The tables and blob store.
    pub writer: ArchiveWriter,
    written: HashSet<u128>,
    snapshots: HashSet<Sha1Id>,
    store: StoreBlobs,
    /// Nodes written, by kind: contents, directories, revisions, releases, snapshots, origins.
    pub nodes: [u64; 6],
}

fn key(id: &Sha1Id) -> u128 {
    u128::from_le_bytes(id[..16].try_into().expect("16 bytes"))
}

impl Sink {
    /// A sink writing through `writer`.
    pub fn new(writer: ArchiveWriter, store: StoreBlobs) -> Self {
        Self {
            writer,
            written: HashSet::new(),
            snapshots: HashSet::new(),
            store,
            nodes: [0; 6],
        }
    }

    /// Nodes written so far.
    pub fn total(&self) -> u64 {
        self.nodes.iter().sum()
    }

    fn first_time(&mut self, id: &Sha1Id) -> bool {
        self.written.insert(key(id))
    }
}

impl Emit for Sink {
    fn content(&mut self, h: &ContentHashes, spec: &Spec) -> Result<(), ArchiveError> {
        if !self.first_time(&h.sha1_git) {
            return Ok(());
        }
        self.nodes[0] += 1;
        match self.store {
            StoreBlobs::All => {
                let data = content::bytes(spec);
                self.writer.content_hashed(h, Some(&data))
            }
            // License files are stored whatever is asked: they are few and small, and the
            // dataset phase reads them to detect each repository's license.
            StoreBlobs::None if matches!(spec.kind, content::Kind::License(_)) => {
                let data = content::bytes(spec);
                self.writer.content_hashed(h, Some(&data))
            }
            StoreBlobs::None => self.writer.content_hashed(h, None),
        }
    }

    fn directory(&mut self, id: Sha1Id, entries: &[DirEntry]) -> Result<(), ArchiveError> {
        if !self.first_time(&id) {
            return Ok(());
        }
        self.nodes[1] += 1;
        self.writer.directory(id, entries)
    }
}

/// A commit made but not archived yet.
struct Pending {
    tree: Rc<Dir>,
    revision: Revision,
}

/// The first pass's observer of one family.
pub struct Builder<'a> {
    sink: &'a mut Sink,
    world: &'a mut World,
    family: u32,
    model: FamilyModel,
    pending: HashMap<u32, Pending>,
    /// Releases: (id, row, target commit, written).
    releases: Vec<(Sha1Id, Release, u32, bool)>,
}

fn signature(who: &str, time: i64) -> Signature {
    Signature {
        fullname: who.as_bytes().to_vec(),
        date: Some(GitDate {
            seconds: time,
            offset_minutes: 0,
            raw_offset: b"+0000".to_vec(),
        }),
    }
}

impl<'a> Builder<'a> {
    /// An observer writing family `family` through `sink` and recording it in `world`.
    pub fn new(sink: &'a mut Sink, world: &'a mut World, family: u32) -> Self {
        Self {
            sink,
            world,
            family,
            model: FamilyModel::default(),
            pending: HashMap::new(),
            releases: Vec::new(),
        }
    }

    /// What the play made, for the later passes.
    pub fn finish(self) -> FamilyModel {
        self.model
    }

    /// Writes commit `c` and every commit below it not written yet, with their trees.
    fn archive(&mut self, names: &Names, c: u32) -> Result<(), ArchiveError> {
        let mut stack = vec![c];
        while let Some(c) = stack.pop() {
            let Some(p) = self.pending.remove(&c) else {
                continue;
            };
            p.tree.emit(names, self.sink)?;
            if self.sink.first_time(&p.revision.id) {
                self.sink.nodes[2] += 1;
                self.sink.writer.revision(&p.revision)?;
            }
            self.model.archived[c as usize] = true;
            stack.extend(
                self.model.parents[c as usize]
                    .iter()
                    .filter(|&&x| x != NONE),
            );
        }
        Ok(())
    }
}

impl Observer for Builder<'_> {
    fn commit(&mut self, names: &Names, e: &CommitEvent) -> Result<(), ArchiveError> {
        let tree = e.tree.id(names);
        let parents: Vec<Sha1Id> = e
            .parents
            .iter()
            .map(|&p| self.model.ids[p as usize])
            .collect();
        let mut body = format!("tree {}\n", hex(&tree));
        for p in &parents {
            body.push_str(&format!("parent {}\n", hex(p)));
        }
        body.push_str(&format!("author {} {} +0000\n", e.author, e.time));
        body.push_str(&format!("committer {} {} +0000\n\n", e.author, e.time));
        body.push_str(e.message);
        let id = git_object_id("commit", body.as_bytes());
        let sig = signature(e.author, e.time);
        let revision = Revision {
            id,
            directory: tree,
            parents,
            author: sig.clone(),
            committer: sig,
            message: e.message.as_bytes().to_vec(),
            extra_headers: Vec::new(),
        };
        debug_assert_eq!(e.index as usize, self.model.ids.len());
        self.model.ids.push(id);
        let mut ps = [NONE; 2];
        for (slot, p) in ps.iter_mut().zip(e.parents) {
            *slot = *p;
        }
        self.model.parents.push(ps);
        self.model.archived.push(false);
        self.pending.insert(
            e.index,
            Pending {
                tree: e.tree.clone(),
                revision,
            },
        );
        Ok(())
    }

    fn tag(&mut self, e: &TagEvent) -> Result<(), ArchiveError> {
        let Some(r) = e.release else {
            return Ok(());
        };
        let target = self.model.ids[e.commit as usize];
        let message = format!("Release {}\n", e.name);
        let body = format!(
            "object {}\ntype commit\ntag {}\ntagger {} {} +0000\n\n{message}",
            hex(&target),
            e.name,
            e.author,
            e.time
        );
        let id = git_object_id("tag", body.as_bytes());
        let release = Release {
            id,
            name: e.name.as_bytes().to_vec(),
            message: message.into_bytes(),
            target,
            target_type: "revision",
            author: Some(signature(e.author, e.time)),
        };
        debug_assert_eq!(r as usize, self.releases.len());
        self.releases.push((id, release, e.commit, false));
        self.model.releases.push(e.commit);
        Ok(())
    }

    fn visit(&mut self, names: &Names, e: &VisitEvent) -> Result<(), ArchiveError> {
        let mut branches = Vec::with_capacity(e.branches.len());
        let mut heads = Vec::new();
        for (name, t) in e.branches {
            let target = match t {
                Target::Commit(c) => {
                    self.archive(names, *c)?;
                    heads.push(Head {
                        commit: *c,
                        via_release: false,
                    });
                    BranchTarget::Revision(self.model.ids[*c as usize])
                }
                Target::Release(r) => {
                    let (id, commit) = (self.releases[*r as usize].0, self.releases[*r as usize].2);
                    self.archive(names, commit)?;
                    if !self.releases[*r as usize].3 {
                        self.releases[*r as usize].3 = true;
                        if self.sink.first_time(&id) {
                            self.sink.nodes[3] += 1;
                            self.sink.writer.release(&self.releases[*r as usize].1)?;
                        }
                    }
                    heads.push(Head {
                        commit,
                        via_release: true,
                    });
                    BranchTarget::Release(id)
                }
                Target::Alias(to) => BranchTarget::Alias(to.clone()),
            };
            branches.push((name.clone(), target));
        }
        let snp = snapshot_id(&branches).map_err(ArchiveError::Other)?;
        let tables = &mut self.sink.writer.tables;
        if self.sink.snapshots.insert(snp) {
            self.sink.nodes[4] += 1;
            write_snapshot(tables, &hex(&snp), &branches)?;
        }
        let origin = &mut self.world.origins[e.origin as usize];
        if origin.visits.is_empty() {
            self.sink.nodes[5] += 1;
            let id = hex(&origin_id(&origin.url));
            tables.table("origin")?.push(&[
                tables::Val::Str(Some(&id)),
                tables::Val::Str(Some(&origin.url)),
            ])?;
        }
        let number = origin.visits.len() as u32 + 1;
        write_visit(tables, &origin.url, number, e.time, "full", &hex(&snp))?;
        origin.visits.push(VisitModel {
            family: self.family,
            snapshot: snp,
            heads,
        });
        Ok(())
    }
}
