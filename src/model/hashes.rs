//! The hashes Software Heritage computes for each object.
//!
//! SWH identifies contents, directories, revisions and releases by their git object id
//! (`sha1_git`), origins by the SHA-1 of their URL, and snapshots by an identifier of their
//! own, computed like a git object of type `snapshot`. Contents also carry the plain `sha1`
//! (the key of the public S3 bucket), `sha256` and `blake2s256` of their bytes.

use blake2::Blake2s256;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// A 20-byte object id (git object id, SHA-1).
pub type Sha1Id = [u8; 20];

/// Every hash that the `content` table records for one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHashes {
    /// SHA-1 of the raw bytes: the key of the blob in SWH's object storage.
    pub sha1: Sha1Id,
    /// git blob id of the bytes.
    pub sha1_git: Sha1Id,
    /// SHA-256 of the raw bytes.
    pub sha256: [u8; 32],
    /// BLAKE2s-256 of the raw bytes.
    pub blake2s256: [u8; 32],
    /// Number of bytes.
    pub length: u64,
}

impl ContentHashes {
    /// Hashes `data` the way SWH's content model does.
    pub fn of(data: &[u8]) -> Self {
        Self {
            sha1: Sha1::digest(data).into(),
            sha1_git: git_object_id("blob", data),
            sha256: Sha256::digest(data).into(),
            blake2s256: Blake2s256::digest(data).into(),
            length: data.len() as u64,
        }
    }
}

/// The id git gives an object of type `kind` (`blob`, `tree`, `commit`, `tag`) and body `data`.
pub fn git_object_id(kind: &str, data: &[u8]) -> Sha1Id {
    let mut h = Sha1::new();
    h.update(kind.as_bytes());
    h.update(b" ");
    h.update(data.len().to_string().as_bytes());
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The SWHID hash of an origin: the SHA-1 of its URL, as `swh:1:ori:` identifiers use.
pub fn origin_id(url: &str) -> Sha1Id {
    Sha1::digest(url.as_bytes()).into()
}

/// Where a snapshot branch points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BranchTarget {
    /// A blob.
    Content(Sha1Id),
    /// A tree.
    Directory(Sha1Id),
    /// A commit.
    Revision(Sha1Id),
    /// An annotated tag.
    Release(Sha1Id),
    /// Another branch of the same snapshot, by name (git's symbolic refs, such as `HEAD`).
    Alias(Vec<u8>),
}

impl BranchTarget {
    /// The `target_type` column value of SWH's `snapshot_branch` table.
    pub fn type_name(&self) -> &'static str {
        match self {
            BranchTarget::Content(_) => "content",
            BranchTarget::Directory(_) => "directory",
            BranchTarget::Revision(_) => "revision",
            BranchTarget::Release(_) => "release",
            BranchTarget::Alias(_) => "alias",
        }
    }
}

/// The SWH snapshot identifier of a set of branches (names must be unique).
///
/// Delegates to the `swhid` crate, the SWHID reference implementation, so that our
/// identifiers agree with the archive's by construction rather than by our reading of the spec.
pub fn snapshot_id(branches: &[(Vec<u8>, BranchTarget)]) -> Result<Sha1Id, String> {
    use swhid::snapshot::{Branch, BranchTarget as T, Snapshot};
    let branches = branches
        .iter()
        .map(|(name, target)| {
            let target = match target {
                BranchTarget::Content(id) => T::Content(Some(*id)),
                BranchTarget::Directory(id) => T::Directory(Some(*id)),
                BranchTarget::Revision(id) => T::Revision(Some(*id)),
                BranchTarget::Release(id) => T::Release(Some(*id)),
                BranchTarget::Alias(to) => T::Alias(Some(to.clone().into())),
            };
            Branch::new(name.clone().into(), target)
        })
        .collect();
    let snapshot = Snapshot::new(branches).map_err(|e| e.to_string())?;
    Ok(*snapshot.swhid().digest_bytes())
}

/// Lower-case hex of `bytes`. A table lookup: the scan formats every candidate id, and the
/// `hex` crate's character iterator costs several times more.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&bytes), hex::encode(&bytes));
    }

    #[test]
    fn empty_blob_has_gits_well_known_id() {
        assert_eq!(
            hex(&git_object_id("blob", b"")),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn content_hashes_of_hello() {
        let h = ContentHashes::of(b"hello\n");
        assert_eq!(hex(&h.sha1), "f572d396fae9206628714fb2ce00f72e94f2258f");
        assert_eq!(hex(&h.sha1_git), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(
            hex(&h.sha256),
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(h.length, 6);
    }

    #[test]
    fn empty_snapshot_has_swhs_published_id() {
        // The empty snapshot's id is the one SWH's documentation gives.
        assert_eq!(
            hex(&snapshot_id(&[]).unwrap()),
            "1a8893e6a86f444e8be8e7bda6cb34fb1735a00e"
        );
    }

    #[test]
    fn origin_id_matches_example_dataset() {
        // From ../shared/swh-example-dataset: origin ids there are real hashes of the URL.
        assert_eq!(
            hex(&origin_id("https://example.com/swh/graph")),
            "83404f995118bd25774f4ac14422a8f175e7a054"
        );
    }
}
