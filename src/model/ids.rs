//! Object identifiers as 20-byte values.
//!
//! Software Heritage names contents, directories, revisions and releases by their git object
//! id ([`Sha1Git`]); the public blob store keys contents by the plain SHA-1 of their bytes
//! ([`Sha1`]). Both are SHA-1 digests, so they are kept apart by type: passing a `sha1_git`
//! where the store wants a `sha1` does not compile. In memory they are 20 bytes, never hex
//! strings; hex is only their text form in files and messages.

use std::fmt;
use std::str::FromStr;

/// Why a text is not a 40-digit hex id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a 40-digit hexadecimal id")]
pub struct BadId {
    /// The text, cut to 64 characters.
    pub text: String,
}

/// A hasher for ids in hash maps and sets: an id is a digest, so its first eight bytes are
/// already uniform, and hashing all twenty with SipHash was a tenth of the content scan.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // An id hashes as one 20-byte write (after a length prefix, ignored below): its
        // first eight bytes, mixed so that the high bits hash tables use vary too.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 =
            (self.0.rotate_left(29) ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`IdHasher`]s.
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

macro_rules! sha1_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// The id from its 40 hex digits (either case).
            pub fn from_hex(text: &str) -> Result<Self, BadId> {
                let bad = || BadId { text: text.chars().take(64).collect() };
                if text.len() != 40 {
                    return Err(bad());
                }
                let mut out = [0u8; 20];
                faster_hex::hex_decode(text.as_bytes(), &mut out).map_err(|_| bad())?;
                Ok(Self(out))
            }

            /// Lower-case hex, 40 digits.
            pub fn to_hex(&self) -> String {
                crate::model::hashes::hex(&self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                Self::from_hex(s)
            }
        }

        impl From<[u8; 20]> for $name {
            fn from(bytes: [u8; 20]) -> Self {
                Self(bytes)
            }
        }
    };
}

sha1_type!(
    /// SHA-1 of a blob's raw bytes: the key of Software Heritage's object store
    /// (`s3://softwareheritage/content/<sha1>`).
    Sha1
);

sha1_type!(
    /// A git object id (SWH's `sha1_git`): the id of a content, directory, revision or
    /// release, and the hash in its SWHID.
    Sha1Git
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let text = "ce013625030ba8dba906f756967f9e9ca394464a";
        let id = Sha1Git::from_hex(text).unwrap();
        assert_eq!(id.to_hex(), text);
        assert_eq!(Sha1Git::from_hex(&text.to_uppercase()).unwrap(), id);
        assert_eq!(id.to_string(), text);
        for bad in [
            "",
            "ce01",
            &text[1..],
            &format!("{text}0"),
            &text.replace('c', "g"),
        ] {
            assert!(Sha1::from_hex(bad).is_err(), "{bad}");
        }
        // Multi-byte text of the right byte length is refused, not sliced.
        assert!(Sha1::from_hex(&"é".repeat(20)).is_err());
    }
}
