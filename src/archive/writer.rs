//! Turns the objects of a visit into table rows and stored blobs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::model::hashes::{hex, ContentHashes, Sha1Id};

use super::git::{DirEntry, GitDate, ObjectSink, Release, Revision, Signature};
use super::tables::{pseudonym, Tables, Val};
use super::ArchiveError;

/// SWH's reason for a blob its loader did not archive because of its size.
pub const TOO_LARGE_REASON: &str = "Content too large";

/// Writes blobs as `<dir>/<sha1 hex>`, gzip-compressed: the layout of
/// `s3://softwareheritage/content/`, so that the folder can be served as that bucket.
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// A store rooted at `dir` (created if needed).
    pub fn create(dir: &Path) -> Result<Self, ArchiveError> {
        std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Stores `data` under its sha1; gzip headers carry no time, so the bytes are reproducible.
    pub fn put(&self, sha1: &Sha1Id, data: &[u8]) -> Result<u64, ArchiveError> {
        let path = self.dir.join(hex(sha1));
        let file = File::create(&path).map_err(|e| ArchiveError::io(&path, e))?;
        let mut gz = GzEncoder::new(file, Compression::default());
        gz.write_all(data).map_err(|e| ArchiveError::io(&path, e))?;
        let file = gz.finish().map_err(|e| ArchiveError::io(&path, e))?;
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    }
}

/// Counts of what an [`ArchiveWriter`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Blobs stored in the object store.
    pub contents: u64,
    /// Blobs over the size cap, recorded in `skipped_content` only.
    pub skipped_contents: u64,
    /// Raw bytes of stored blobs.
    pub content_bytes: u64,
    /// Compressed bytes of stored blobs.
    pub stored_bytes: u64,
}

/// An [`ObjectSink`] that writes SWH export rows and the blob store.
pub struct ArchiveWriter {
    /// The ORC tables.
    pub tables: Tables,
    blobs: BlobStore,
    max_content_size: u64,
    /// What was written.
    pub counts: WriteCounts,
}

fn ts(date: &Option<GitDate>) -> Option<i64> {
    date.as_ref()
        .and_then(|d| d.seconds.checked_mul(1_000_000_000))
}

fn offset(date: &Option<GitDate>) -> Option<i16> {
    date.as_ref().map(|d| d.offset_minutes)
}

fn raw_offset(date: &Option<GitDate>) -> Option<&[u8]> {
    date.as_ref().map(|d| d.raw_offset.as_slice())
}

impl ArchiveWriter {
    /// Writes tables through `tables` and blobs into `blobs`; blobs over `max_content_size`
    /// bytes go to `skipped_content`.
    pub fn new(tables: Tables, blobs: BlobStore, max_content_size: u64) -> Self {
        Self {
            tables,
            blobs,
            max_content_size,
            counts: WriteCounts::default(),
        }
    }

    fn person(sig: &Signature) -> [u8; 32] {
        pseudonym(&sig.fullname)
    }

    /// Records a blob whose hashes are known; stores `data` (its bytes) when given. Blobs
    /// over the size cap go to `skipped_content` and are never stored.
    pub fn content_hashed(
        &mut self,
        h: &ContentHashes,
        data: Option<&[u8]>,
    ) -> Result<(), ArchiveError> {
        let (sha1, sha1_git, sha256, blake) = (
            hex(&h.sha1),
            hex(&h.sha1_git),
            hex(&h.sha256),
            hex(&h.blake2s256),
        );
        let mut row = vec![
            Val::Str(Some(&sha1)),
            Val::Str(Some(&sha1_git)),
            Val::Str(Some(&sha256)),
            Val::Str(Some(&blake)),
            Val::I64(Some(h.length as i64)),
        ];
        if h.length > self.max_content_size {
            row.extend([Val::Str(Some("absent")), Val::Str(Some(TOO_LARGE_REASON))]);
            self.counts.skipped_contents += 1;
            return self.tables.table("skipped_content")?.push(&row);
        }
        row.extend([Val::Str(Some("visible")), Val::Bin(None)]);
        self.tables.table("content")?.push(&row)?;
        if let Some(data) = data {
            self.counts.stored_bytes += self.blobs.put(&h.sha1, data)?;
            self.counts.contents += 1;
            self.counts.content_bytes += h.length;
        }
        Ok(())
    }

    /// Stores `data` in the blob store (its row is written separately).
    pub fn store_blob(&mut self, h: &ContentHashes, data: &[u8]) -> Result<(), ArchiveError> {
        self.counts.stored_bytes += self.blobs.put(&h.sha1, data)?;
        self.counts.contents += 1;
        self.counts.content_bytes += h.length;
        Ok(())
    }
}

impl ObjectSink for ArchiveWriter {
    fn revision(&mut self, rev: &Revision) -> Result<(), ArchiveError> {
        let id = hex(&rev.id);
        let author = Self::person(&rev.author);
        let committer = Self::person(&rev.committer);
        let dir = hex(&rev.directory);
        self.tables.table("revision")?.push(&[
            Val::Str(Some(&id)),
            Val::Bin(Some(&rev.message)),
            Val::Bin(Some(&author)),
            Val::Ts(ts(&rev.author.date)),
            Val::I16(offset(&rev.author.date)),
            Val::Bin(raw_offset(&rev.author.date)),
            Val::Bin(Some(&committer)),
            Val::Ts(ts(&rev.committer.date)),
            Val::I16(offset(&rev.committer.date)),
            Val::Bin(raw_offset(&rev.committer.date)),
            Val::Str(Some(&dir)),
            Val::Str(Some("git")),
            Val::Bin(None),
        ])?;
        for (rank, parent) in rev.parents.iter().enumerate() {
            let parent = hex(parent);
            self.tables.table("revision_history")?.push(&[
                Val::Str(Some(&id)),
                Val::Str(Some(&parent)),
                Val::I32(Some(rank as i32)),
            ])?;
        }
        for (key, value) in &rev.extra_headers {
            self.tables.table("revision_extra_headers")?.push(&[
                Val::Str(Some(&id)),
                Val::Bin(Some(key)),
                Val::Bin(Some(value)),
            ])?;
        }
        Ok(())
    }

    fn release(&mut self, rel: &Release) -> Result<(), ArchiveError> {
        let id = hex(&rel.id);
        let target = hex(&rel.target);
        let author = rel.author.as_ref().map(Self::person);
        let date = rel.author.as_ref().and_then(|a| a.date.clone());
        self.tables.table("release")?.push(&[
            Val::Str(Some(&id)),
            Val::Bin(Some(&rel.name)),
            Val::Bin(Some(&rel.message)),
            Val::Str(Some(&target)),
            Val::Str(Some(rel.target_type)),
            Val::Bin(author.as_ref().map(|a| a.as_slice())),
            Val::Ts(ts(&date)),
            Val::I16(offset(&date)),
            Val::Bin(raw_offset(&date)),
            Val::Bin(None),
        ])
    }

    fn directory(&mut self, id: Sha1Id, entries: &[DirEntry]) -> Result<(), ArchiveError> {
        let id = hex(&id);
        self.tables
            .table("directory")?
            .push(&[Val::Str(Some(&id)), Val::Bin(None)])?;
        for e in entries {
            let target = hex(&e.target);
            self.tables.table("directory_entry")?.push(&[
                Val::Str(Some(&id)),
                Val::Bin(Some(&e.name)),
                Val::Str(Some(e.kind)),
                Val::Str(Some(&target)),
                Val::I32(Some(e.perms as i32)),
            ])?;
        }
        Ok(())
    }

    fn content(&mut self, id: Sha1Id, data: &[u8]) -> Result<(), ArchiveError> {
        let h = ContentHashes::of(data);
        debug_assert_eq!(h.sha1_git, id);
        self.content_hashed(&h, Some(data))
    }
}
