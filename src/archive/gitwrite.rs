//! Writing git repositories with gix, for the demo and synthetic archives.

use std::collections::BTreeMap;
use std::path::Path;

use gix::bstr::BString;
use gix::ObjectId;

use super::ArchiveError;

/// One entry of a commit's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A regular or executable file.
    File {
        /// Its bytes.
        data: Vec<u8>,
        /// Whether it is executable.
        exec: bool,
    },
    /// A symbolic link, with its target.
    Link(Vec<u8>),
    /// A submodule at this commit.
    Gitlink(ObjectId),
}

/// A commit's files, by full path.
pub(crate) type Files = BTreeMap<Vec<u8>, Node>;

/// A regular file.
pub(crate) fn file(data: impl Into<Vec<u8>>) -> Node {
    Node::File {
        data: data.into(),
        exec: false,
    }
}

/// Writes objects and refs of one bare repository with gix.
pub(crate) struct RepoWriter {
    pub(crate) repo: gix::Repository,
    pub(crate) clock: i64,
}

pub(crate) fn gix_err(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Other(format!("demo repository: {e}"))
}

impl RepoWriter {
    pub(crate) fn create(path: &Path, clock: i64) -> Result<Self, ArchiveError> {
        let repo = gix::init_bare(path).map_err(gix_err)?;
        Ok(Self { repo, clock })
    }

    pub(crate) fn write_tree(
        &self,
        files: &Files,
        prefix: &[u8],
    ) -> Result<ObjectId, ArchiveError> {
        let mut entries = Vec::new();
        let mut subdirs: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        for (path, node) in files.range(prefix.to_vec()..) {
            let Some(rest) = path.strip_prefix(prefix) else {
                break;
            };
            match rest.iter().position(|&b| b == b'/') {
                Some(slash) => {
                    subdirs.insert(rest[..slash].to_vec(), ());
                }
                None => {
                    use gix::objs::tree::EntryKind;
                    let (kind, oid) = match node {
                        Node::File { data, exec } => (
                            if *exec {
                                EntryKind::BlobExecutable
                            } else {
                                EntryKind::Blob
                            },
                            self.repo.write_blob(data).map_err(gix_err)?.detach(),
                        ),
                        Node::Link(target) => (
                            EntryKind::Link,
                            self.repo.write_blob(target).map_err(gix_err)?.detach(),
                        ),
                        Node::Gitlink(id) => (EntryKind::Commit, *id),
                    };
                    entries.push(gix::objs::tree::Entry {
                        mode: kind.into(),
                        filename: BString::from(rest.to_vec()),
                        oid,
                    });
                }
            }
        }
        for name in subdirs.keys() {
            let mut sub = prefix.to_vec();
            sub.extend_from_slice(name);
            sub.push(b'/');
            let oid = self.write_tree(files, &sub)?;
            entries.push(gix::objs::tree::Entry {
                mode: gix::objs::tree::EntryKind::Tree.into(),
                filename: BString::from(name.clone()),
                oid,
            });
        }
        entries.sort();
        Ok(self
            .repo
            .write_object(&gix::objs::Tree { entries })
            .map_err(gix_err)?
            .detach())
    }

    pub(crate) fn signature(&self, who: &str) -> gix::actor::Signature {
        gix::actor::Signature {
            name: who.into(),
            email: format!("{}@example.org", who.to_lowercase().replace(' ', ".")).into(),
            time: gix::date::Time {
                seconds: self.clock,
                offset: 7200,
            },
        }
    }

    pub(crate) fn commit(
        &mut self,
        files: &Files,
        parents: &[ObjectId],
        message: &str,
    ) -> Result<ObjectId, ArchiveError> {
        self.clock += 3_600;
        let tree = self.write_tree(files, b"")?;
        let commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: self.signature("Ada Lovelace"),
            committer: self.signature("Grace Hopper"),
            encoding: None,
            message: format!("{message}\n").into(),
            extra_headers: Vec::new(),
        };
        Ok(self.repo.write_object(&commit).map_err(gix_err)?.detach())
    }

    pub(crate) fn tag(
        &mut self,
        name: &str,
        target: ObjectId,
        message: &str,
    ) -> Result<ObjectId, ArchiveError> {
        self.clock += 60;
        let tag = gix::objs::Tag {
            target,
            target_kind: gix::object::Kind::Commit,
            name: name.into(),
            tagger: Some(self.signature("Release Bot")),
            message: format!("{message}\n").into(),
            signature: None,
        };
        Ok(self.repo.write_object(&tag).map_err(gix_err)?.detach())
    }

    pub(crate) fn set_ref(&self, name: &str, id: ObjectId) -> Result<(), ArchiveError> {
        self.repo
            .reference(name, id, gix::refs::transaction::PreviousValue::Any, "demo")
            .map_err(gix_err)?;
        Ok(())
    }

    pub(crate) fn set_head(&self, target: &str) -> Result<(), ArchiveError> {
        use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
        let target = if target.starts_with("refs/") {
            gix::refs::Target::Symbolic(target.try_into().map_err(gix_err)?)
        } else {
            gix::refs::Target::Object(ObjectId::from_hex(target.as_bytes()).map_err(gix_err)?)
        };
        self.repo
            .edit_reference(RefEdit {
                change: Change::Update {
                    log: LogChange {
                        mode: RefLog::AndReference,
                        force_create_reflog: false,
                        message: "demo".into(),
                    },
                    expected: PreviousValue::Any,
                    new: target,
                },
                name: "HEAD".try_into().map_err(gix_err)?,
                deref: false,
            })
            .map_err(gix_err)?;
        Ok(())
    }
}
