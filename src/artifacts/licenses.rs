//! The walk's root license files (`WORKDIR/walk/licenses.flat`): for every revision a row
//! resolved to, the license files at the root of its tree ([`crate::model::license`]), as
//! `(revision, content)`, sorted and distinct. A revision without any has no record.
//!
//! The content join adds these contents to the ones it looks up, the fetch stores them, and
//! the dataset phase reads them to detect each repository's licenses.

use std::path::Path;

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use crate::model::Sha1Git;

/// The file name.
pub const LICENSES: &str = "licenses.flat";

/// One license file at the root of a revision's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootLicense {
    /// The revision.
    pub revision: Sha1Git,
    /// The license file's content.
    pub content: Sha1Git,
}

impl FixedRecord for RootLicense {
    const SIZE: usize = 40;
    const KIND: [u8; 4] = *b"lics";
    fn write_to(&self, out: &mut [u8]) {
        out[..20].copy_from_slice(self.revision.as_bytes());
        out[20..40].copy_from_slice(self.content.as_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            revision: Sha1Git(le::id_at(b, 0)),
            content: Sha1Git(le::id_at(b, 20)),
        }
    }
}

impl crate::sort::Record for RootLicense {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut b = [0u8; 40];
        self.write_to(&mut b);
        out.extend_from_slice(&b);
    }
    fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == 40).then(|| Self::read_from(b))
    }
    fn mem_size(&self) -> usize {
        0
    }
}

/// Maps `dir/licenses.flat`.
pub fn open(dir: &Path) -> Result<FlatFile<RootLicense>, FlatError> {
    FlatFile::open(&dir.join(LICENSES))
}
