//! Reading a git repository the way Software Heritage's git loader sees it.
//!
//! A visit of a repository yields a snapshot (its refs as branches) and every object reachable
//! from those refs that the archive does not hold yet. Objects are handed to an [`ObjectSink`]
//! as they are read, so a repository is never held in memory; only the set of object ids already
//! archived is kept, which the builder needs anyway to write each object once across forks.

use std::collections::HashSet;
use std::path::Path;

use gix::bstr::ByteSlice;
use gix::ObjectId;

use crate::model::hashes::{BranchTarget, Sha1Id};

use super::ArchiveError;

/// A point in time as git writes it in a signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDate {
    /// Seconds since the Unix epoch, UTC.
    pub seconds: i64,
    /// Offset from UTC in minutes, as SWH's `*_offset` columns hold it.
    pub offset_minutes: i16,
    /// The offset exactly as written in the object (e.g. `+0200`, or a malformed `+02000`).
    pub raw_offset: Vec<u8>,
}

/// A signature: who and when, from an `author`, `committer` or `tagger` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `Name <email>` as written in the object: SWH's person "fullname".
    pub fullname: Vec<u8>,
    /// The date, when the line has a parseable one.
    pub date: Option<GitDate>,
}

/// A commit, as a row of SWH's `revision` table plus its parents and extra headers.
#[derive(Debug, Clone)]
pub struct Revision {
    /// Commit id.
    pub id: Sha1Id,
    /// Root tree id.
    pub directory: Sha1Id,
    /// Parent commit ids, in order.
    pub parents: Vec<Sha1Id>,
    /// Author line.
    pub author: Signature,
    /// Committer line.
    pub committer: Signature,
    /// Raw message bytes.
    pub message: Vec<u8>,
    /// Headers git keeps beyond the standard ones (`encoding`, `gpgsig`, `mergetag`, ...).
    pub extra_headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An annotated tag, as a row of SWH's `release` table.
#[derive(Debug, Clone)]
pub struct Release {
    /// Tag object id.
    pub id: Sha1Id,
    /// Tag name.
    pub name: Vec<u8>,
    /// Raw message bytes (signature included, as SWH stores it).
    pub message: Vec<u8>,
    /// Id of the tagged object.
    pub target: Sha1Id,
    /// SWH type name of the tagged object (`revision`, `release`, `directory`, `content`).
    pub target_type: &'static str,
    /// Tagger, absent on some old tags.
    pub author: Option<Signature>,
}

/// One entry of a tree, as a row of SWH's `directory_entry` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name, raw bytes (git allows any byte but `/` and NUL).
    pub name: Vec<u8>,
    /// SWH entry type: `file` (blobs and symlinks), `dir` or `rev` (gitlinks, i.e. submodules).
    pub kind: &'static str,
    /// Target object id.
    pub target: Sha1Id,
    /// git mode bits, e.g. 0o100644.
    pub perms: u32,
}

/// An object that a repository references but does not hold (partial clone, broken repo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingObject {
    /// The object id.
    pub id: Sha1Id,
    /// What the referrer expected it to be (`revision`, `directory`, `content`, ...).
    pub expected: &'static str,
    /// Who references it, for the report (`refs/heads/main`, `tree 1234...`).
    pub referenced_by: String,
}

/// Receives the objects of a visit, each exactly once per archive.
pub trait ObjectSink {
    /// A commit.
    fn revision(&mut self, rev: &Revision) -> Result<(), ArchiveError>;
    /// An annotated tag.
    fn release(&mut self, rel: &Release) -> Result<(), ArchiveError>;
    /// A tree and its entries, in git order.
    fn directory(&mut self, id: Sha1Id, entries: &[DirEntry]) -> Result<(), ArchiveError>;
    /// A blob's bytes; `id` is its git id.
    fn content(&mut self, id: Sha1Id, data: &[u8]) -> Result<(), ArchiveError>;
}

/// What one visit of a repository found.
#[derive(Debug, Clone)]
pub struct Visit {
    /// Snapshot branches, sorted by name.
    pub branches: Vec<(Vec<u8>, BranchTarget)>,
    /// Objects referenced but absent from the repository.
    pub missing: Vec<MissingObject>,
    /// Number of objects this visit added to the archive.
    pub new_objects: u64,
}

/// Whether SWH's git loader keeps a ref as a snapshot branch.
///
/// It keeps every ref except peeled tags (`^{}`) and GitHub's synthetic merge refs
/// (`refs/pull/N/merge`); `refs/pull/N/head` stays.
pub fn keeps_ref(name: &[u8]) -> bool {
    if name.ends_with(b"^{}") {
        return false;
    }
    if let Some(rest) = name.strip_prefix(b"refs/pull/") {
        if rest.ends_with(b"/merge") {
            return false;
        }
    }
    true
}

/// The 20 bytes of a SHA-1 object id ([`GitRepo::open`] refuses repositories of another hash).
fn sha1(id: &gix::oid) -> Sha1Id {
    let mut out = [0u8; 20];
    let bytes = id.as_bytes();
    let n = bytes.len().min(20);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn swh_type(kind: gix::object::Kind) -> &'static str {
    match kind {
        gix::object::Kind::Commit => "revision",
        gix::object::Kind::Tree => "directory",
        gix::object::Kind::Blob => "content",
        gix::object::Kind::Tag => "release",
    }
}

fn branch_target(kind: gix::object::Kind, id: Sha1Id) -> BranchTarget {
    match kind {
        gix::object::Kind::Commit => BranchTarget::Revision(id),
        gix::object::Kind::Tree => BranchTarget::Directory(id),
        gix::object::Kind::Blob => BranchTarget::Content(id),
        gix::object::Kind::Tag => BranchTarget::Release(id),
    }
}

/// Splits a raw signature line (`Name <email> 1234567890 +0200`) into fullname and date.
pub fn parse_signature(raw: &[u8]) -> Signature {
    let Some(close) = raw.iter().rposition(|&b| b == b'>') else {
        return Signature {
            fullname: raw.to_vec(),
            date: None,
        };
    };
    let fullname = raw[..=close].to_vec();
    let rest = raw[close + 1..].trim();
    let mut parts = rest.splitn(2, |&b| b == b' ');
    let seconds = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<i64>().ok());
    let raw_offset = parts.next().map(|o| o.trim().to_vec()).unwrap_or_default();
    let date = seconds.map(|seconds| GitDate {
        seconds,
        offset_minutes: offset_minutes(&raw_offset),
        raw_offset,
    });
    Signature { fullname, date }
}

/// Minutes east of UTC of a git offset such as `-0430`; 0 when it cannot be read, as SWH does.
fn offset_minutes(raw: &[u8]) -> i16 {
    let (sign, digits) = match raw.first() {
        Some(b'-') => (-1, &raw[1..]),
        Some(b'+') => (1, &raw[1..]),
        _ => (1, raw),
    };
    if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let n = |r: std::ops::Range<usize>| -> i16 {
        std::str::from_utf8(&digits[r])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    sign * (n(0..2) * 60 + n(2..4))
}

/// Number of objects in a version-2 pack index: the last entry of its fan-out table.
fn idx_object_count(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 8];
    f.read_exact(&mut header).ok()?;
    if header != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return None;
    }
    f.seek(SeekFrom::Start(8 + 255 * 4)).ok()?;
    let mut last = [0u8; 4];
    f.read_exact(&mut last).ok()?;
    Some(u32::from_be_bytes(last) as u64)
}

/// One repository opened for reading.
pub struct GitRepo {
    repo: gix::Repository,
}

enum Pending {
    Object {
        id: ObjectId,
        expected: Option<&'static str>,
        referenced_by: String,
    },
}

impl GitRepo {
    /// Opens the repository at `path` (bare or not) without reading any user or system config,
    /// so that the same repository reads the same on every machine.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let repo = gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| {
            ArchiveError::NotARepository {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        if repo.object_hash() != gix::hash::Kind::Sha1 {
            return Err(ArchiveError::NotARepository {
                path: path.to_owned(),
                reason: format!(
                    "it uses {:?} object ids; Software Heritage archives SHA-1 repositories only",
                    repo.object_hash()
                ),
            });
        }
        Ok(Self { repo })
    }

    /// An upper bound of the objects the repository holds (packed plus loose, reachable or
    /// not), read from pack index headers and the loose object folders: cheap, and enough
    /// to give the progress logger an ETA.
    pub fn object_count_estimate(&self) -> u64 {
        let objects = self.repo.objects.store_ref().path().to_owned();
        let mut count = 0u64;
        let Ok(dirs) = std::fs::read_dir(&objects) else {
            return 0;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name();
            let name = name.to_string_lossy();
            if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                count += std::fs::read_dir(dir.path())
                    .map(|d| d.count() as u64)
                    .unwrap_or(0);
            }
        }
        if let Ok(packs) = std::fs::read_dir(objects.join("pack")) {
            for pack in packs.flatten() {
                if pack.path().extension().is_some_and(|e| e == "idx") {
                    count += idx_object_count(&pack.path()).unwrap_or(0);
                }
            }
        }
        count
    }

    /// The snapshot branches of the repository as SWH's loader records them, reading only its
    /// refs (cheap: what tells whether an archive of it is still up to date).
    pub fn snapshot_branches(&self) -> Result<Vec<(Vec<u8>, BranchTarget)>, ArchiveError> {
        self.branches(&mut Vec::new())
    }

    /// The snapshot branches of the repository as SWH's loader records them.
    fn branches(
        &self,
        missing: &mut Vec<MissingObject>,
    ) -> Result<Vec<(Vec<u8>, BranchTarget)>, ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::Git {
            path: self.repo.path().to_owned(),
            reason: e.to_string(),
        };
        let mut branches = Vec::new();
        let platform = self.repo.references().map_err(|e| err(&e))?;
        for reference in platform.all().map_err(|e| err(&e))? {
            let mut reference = reference.map_err(|e| err(&e))?;
            let name = reference.name().as_bstr().to_vec();
            if !keeps_ref(&name) {
                continue;
            }
            // Symbolic refs other than HEAD are advertised by a git server as the object they
            // resolve to, which is what SWH records.
            let id = match reference.target() {
                gix::refs::TargetRef::Object(id) => id.to_owned(),
                gix::refs::TargetRef::Symbolic(_) => match reference.peel_to_id() {
                    Ok(id) => id.detach(),
                    Err(_) => continue,
                },
            };
            let target = self.target_of(id, &name, missing)?;
            branches.push((name, target));
        }
        let head = self.repo.head().map_err(|e| err(&e))?;
        let head_target = match head.kind {
            gix::head::Kind::Symbolic(r) => Some(BranchTarget::Alias(r.name.as_bstr().to_vec())),
            gix::head::Kind::Unborn(name) => Some(BranchTarget::Alias(name.as_bstr().to_vec())),
            gix::head::Kind::Detached { target, .. } => {
                Some(self.target_of(target, b"HEAD", missing)?)
            }
        };
        if let Some(t) = head_target {
            branches.push((b"HEAD".to_vec(), t));
        }
        branches.sort();
        branches.dedup_by(|a, b| a.0 == b.0);
        Ok(branches)
    }

    fn target_of(
        &self,
        id: ObjectId,
        ref_name: &[u8],
        missing: &mut Vec<MissingObject>,
    ) -> Result<BranchTarget, ArchiveError> {
        match self.repo.find_header(id) {
            Ok(header) => Ok(branch_target(header.kind(), sha1(&id))),
            Err(_) => {
                // The type of an absent object is unknown; refs name commits far more often than
                // anything else, and SWH records such a branch all the same.
                missing.push(MissingObject {
                    id: sha1(&id),
                    expected: "revision",
                    referenced_by: String::from_utf8_lossy(ref_name).into_owned(),
                });
                Ok(BranchTarget::Revision(sha1(&id)))
            }
        }
    }

    /// Reads the repository's refs and hands every object reachable from them that is not in
    /// `seen` to `sink`, adding it to `seen`.
    pub fn visit(
        &self,
        seen: &mut HashSet<Sha1Id>,
        sink: &mut dyn ObjectSink,
        progress: &mut dyn FnMut(),
    ) -> Result<Visit, ArchiveError> {
        let mut missing = Vec::new();
        let branches = self.branches(&mut missing)?;
        let mut stack: Vec<Pending> = Vec::new();
        // Push in reverse so that objects come out in branch-name order: the output then
        // depends only on the repository's content.
        for (name, target) in branches.iter().rev() {
            let (id, expected) = match target {
                BranchTarget::Alias(_) => continue,
                BranchTarget::Revision(id) => (id, "revision"),
                BranchTarget::Release(id) => (id, "release"),
                BranchTarget::Directory(id) => (id, "directory"),
                BranchTarget::Content(id) => (id, "content"),
            };
            stack.push(Pending::Object {
                id: ObjectId::Sha1(*id),
                expected: Some(expected),
                referenced_by: String::from_utf8_lossy(name).into_owned(),
            });
        }
        let mut new_objects = 0;
        while let Some(Pending::Object {
            id,
            expected,
            referenced_by,
        }) = stack.pop()
        {
            if seen.contains(&sha1(&id)) {
                continue;
            }
            // An object is marked seen only once read, so that a fork holding an object this
            // repository lacks still archives it.
            let object = match self.repo.try_find_object(id) {
                Ok(Some(o)) => {
                    seen.insert(sha1(&id));
                    o
                }
                Ok(None) => {
                    if !missing.iter().any(|m| m.id == sha1(&id)) {
                        missing.push(MissingObject {
                            id: sha1(&id),
                            expected: expected.unwrap_or("unknown"),
                            referenced_by,
                        });
                    }
                    continue;
                }
                Err(e) => {
                    return Err(ArchiveError::Git {
                        path: self.repo.path().to_owned(),
                        reason: format!("cannot read object {id}: {e}"),
                    })
                }
            };
            new_objects += 1;
            progress();
            self.emit(id, object.kind, &object.data, sink, &mut stack)?;
        }
        Ok(Visit {
            branches,
            missing,
            new_objects,
        })
    }
}

impl GitRepo {
    fn corrupt(&self, id: ObjectId, e: &dyn std::fmt::Display) -> ArchiveError {
        ArchiveError::Git {
            path: self.repo.path().to_owned(),
            reason: format!("cannot parse object {id}: {e}"),
        }
    }

    /// Hands one object read from the repository to `sink` and pushes what it references.
    fn emit(
        &self,
        id: ObjectId,
        kind: gix::object::Kind,
        data: &[u8],
        sink: &mut dyn ObjectSink,
        stack: &mut Vec<Pending>,
    ) -> Result<(), ArchiveError> {
        match kind {
            gix::object::Kind::Blob => sink.content(sha1(&id), data),
            gix::object::Kind::Tree => self.emit_tree(id, data, sink, stack),
            gix::object::Kind::Commit => self.emit_commit(id, data, sink, stack),
            gix::object::Kind::Tag => self.emit_tag(id, data, sink, stack),
        }
    }

    fn emit_tree(
        &self,
        id: ObjectId,
        data: &[u8],
        sink: &mut dyn ObjectSink,
        stack: &mut Vec<Pending>,
    ) -> Result<(), ArchiveError> {
        let tree = gix::objs::TreeRef::from_bytes(data, gix::hash::Kind::Sha1)
            .map_err(|e| self.corrupt(id, &e))?;
        let mut entries = Vec::with_capacity(tree.entries.len());
        for e in &tree.entries {
            let kind = if e.mode.is_tree() {
                "dir"
            } else if e.mode.is_commit() {
                "rev"
            } else {
                "file"
            };
            entries.push(DirEntry {
                name: e.filename.to_vec(),
                kind,
                target: sha1(e.oid),
                perms: e.mode.value() as u32,
            });
        }
        sink.directory(sha1(&id), &entries)?;
        // Gitlinks point into another repository: SWH keeps the arc, not the commit.
        for e in tree.entries.iter().rev().filter(|e| !e.mode.is_commit()) {
            stack.push(Pending::Object {
                id: e.oid.to_owned(),
                expected: Some(if e.mode.is_tree() {
                    "directory"
                } else {
                    "content"
                }),
                referenced_by: format!("tree {id}"),
            });
        }
        Ok(())
    }

    fn emit_commit(
        &self,
        id: ObjectId,
        data: &[u8],
        sink: &mut dyn ObjectSink,
        stack: &mut Vec<Pending>,
    ) -> Result<(), ArchiveError> {
        let c = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
            .map_err(|e| self.corrupt(id, &e))?;
        let parents: Vec<ObjectId> = c.parents().collect();
        let mut extra_headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(enc) = c.encoding {
            extra_headers.push((b"encoding".to_vec(), enc.to_vec()));
        }
        extra_headers.extend(
            c.extra_headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.as_ref().to_vec())),
        );
        let rev = Revision {
            id: sha1(&id),
            directory: sha1(&c.tree()),
            parents: parents.iter().map(|p| sha1(p)).collect(),
            author: parse_signature(c.author),
            committer: parse_signature(c.committer),
            message: c.message.to_vec(),
            extra_headers,
        };
        sink.revision(&rev)?;
        for p in parents.iter().rev() {
            stack.push(Pending::Object {
                id: *p,
                expected: Some("revision"),
                referenced_by: format!("commit {id}"),
            });
        }
        stack.push(Pending::Object {
            id: c.tree(),
            expected: Some("directory"),
            referenced_by: format!("commit {id}"),
        });
        Ok(())
    }

    fn emit_tag(
        &self,
        id: ObjectId,
        data: &[u8],
        sink: &mut dyn ObjectSink,
        stack: &mut Vec<Pending>,
    ) -> Result<(), ArchiveError> {
        let t = gix::objs::TagRef::from_bytes(data, gix::hash::Kind::Sha1)
            .map_err(|e| self.corrupt(id, &e))?;
        let target = ObjectId::from_hex(t.target).map_err(|e| self.corrupt(id, &e))?;
        let mut message = t.message.to_vec();
        if let Some(sig) = t.signature {
            message.extend_from_slice(sig);
        }
        let rel = Release {
            id: sha1(&id),
            name: t.name.to_vec(),
            message,
            target: sha1(&target),
            target_type: swh_type(t.target_kind),
            author: t.tagger.map(|raw| parse_signature(raw)),
        };
        sink.release(&rel)?;
        stack.push(Pending::Object {
            id: target,
            expected: Some(swh_type(t.target_kind)),
            referenced_by: format!("tag {id}"),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_ref_filter() {
        assert!(keeps_ref(b"refs/heads/main"));
        assert!(keeps_ref(b"refs/pull/12/head"));
        assert!(!keeps_ref(b"refs/pull/12/merge"));
        assert!(!keeps_ref(b"refs/tags/v1^{}"));
        assert!(keeps_ref(b"refs/tags/merge"));
    }

    #[test]
    fn signature_lines() {
        let s = parse_signature(b"A U Thor <a@b.c> 1112911993 -0430");
        assert_eq!(s.fullname, b"A U Thor <a@b.c>");
        let d = s.date.unwrap();
        assert_eq!(d.seconds, 1112911993);
        assert_eq!(d.offset_minutes, -270);
        assert_eq!(d.raw_offset, b"-0430");
        // Malformed offsets are kept raw and read as 0, as SWH does.
        let s = parse_signature(b"x <y> 10 +02000");
        assert_eq!(s.date.unwrap().offset_minutes, 0);
        assert!(parse_signature(b"no email").date.is_none());
    }
}
