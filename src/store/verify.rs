//! Proving a blob's bytes: a gzip body must inflate to exactly the known length and hash to
//! the expected sha1 and git blob id, or it is refused.

use std::io::Read;

use sha1::{Digest, Sha1 as Sha1Hasher};

use crate::model::hashes::git_object_id;
use crate::model::{Sha1, Sha1Git};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not valid gzip, or longer or shorter than the known length.
    Gzip(String),
    /// The bytes do not hash to the expected ids.
    Hash(String),
    /// The body is larger than any gzip of the known length can be.
    TooLarge(u64),
}

/// The largest gzip body a blob of `length` bytes may arrive as: deflate's stored blocks add
/// 5 bytes per 64 KiB and gzip 18 bytes of framing, so this leaves room for any encoder.
pub fn body_cap(length: u64) -> u64 {
    length.saturating_add(length / 256).saturating_add(4096)
}

/// The most bytes a blob of unknown length may have, compressed or not (1 GiB: above any
/// file SWH stores as a content).
pub const UNKNOWN_LENGTH_CAP: u64 = 1 << 30;

/// Gunzips `body` (at most `length` + 1 bytes out) and checks length, sha1 and git blob id;
/// a blob known by its sha1 alone (`length` and `sha1_git` unknown) is held to the sha1 and
/// [`UNKNOWN_LENGTH_CAP`].
pub fn verify(
    body: &[u8],
    length: Option<u64>,
    sha1: &Sha1,
    sha1_git: Option<&Sha1Git>,
) -> Result<Vec<u8>, Refused> {
    if body.len() as u64 > length.map_or(UNKNOWN_LENGTH_CAP, body_cap) {
        return Err(Refused::TooLarge(body.len() as u64));
    }
    let limit = length.unwrap_or(UNKNOWN_LENGTH_CAP);
    let mut out = Vec::with_capacity(limit.min(64 << 20).min(body.len() as u64 * 4) as usize);
    flate2::read::GzDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refused::Gzip(e.to_string()))?;
    match length {
        Some(l) if out.len() as u64 != l => {
            return Err(Refused::Gzip(format!("{} bytes, expected {l}", out.len())));
        }
        None if out.len() as u64 > limit => {
            return Err(Refused::Gzip(format!("more than {limit} bytes")));
        }
        _ => {}
    }
    match sha1_git {
        Some(git) => check(&out, sha1, git)?,
        None if !has_sha1(&out, sha1) => {
            return Err(Refused::Hash("sha1 differs".into()));
        }
        None => {}
    }
    Ok(out)
}

/// Checks that `bytes` hash to `sha1` and `sha1_git`.
pub fn check(bytes: &[u8], sha1: &Sha1, sha1_git: &Sha1Git) -> Result<(), Refused> {
    let got = Sha1(Sha1Hasher::digest(bytes).into());
    if &got != sha1 {
        return Err(Refused::Hash(format!("sha1 {got}")));
    }
    if &git_object_id("blob", bytes) != sha1_git.as_bytes() {
        return Err(Refused::Hash("git blob id differs".into()));
    }
    Ok(())
}

/// Whether `bytes` hash to `sha1`.
pub fn has_sha1(bytes: &[u8], sha1: &Sha1) -> bool {
    Sha1Hasher::digest(bytes).as_slice() == sha1.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn verification_refuses_wrong_bytes_and_bombs() {
        let data = b"hello\n";
        let h = crate::model::hashes::ContentHashes::of(data);
        let (sha1, git) = (Sha1(h.sha1), Sha1Git(h.sha1_git));
        assert_eq!(verify(&gz(data), Some(6), &sha1, Some(&git)).unwrap(), data);
        // Same length, other bytes.
        assert!(matches!(
            verify(&gz(b"jello\n"), Some(6), &sha1, Some(&git)),
            Err(Refused::Hash(_))
        ));
        // Longer than announced: cut at length + 1 and refused, whatever the real size.
        let bomb = gz(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            verify(&bomb, Some(100_000), &sha1, Some(&git)),
            Err(Refused::Gzip(_))
        ));
        // A body far larger than any gzip of 6 bytes is refused before inflating.
        assert!(matches!(
            verify(&vec![0u8; 1 << 20], Some(6), &sha1, Some(&git)),
            Err(Refused::TooLarge(_))
        ));
        // Truncated gzip.
        let g = gz(data);
        assert!(verify(&g[..g.len() - 4], Some(6), &sha1, Some(&git)).is_err());
        assert!(verify(b"not gzip", Some(6), &sha1, Some(&git)).is_err());
        // Known by its sha1 alone: the sha1 still decides.
        assert_eq!(verify(&gz(data), None, &sha1, None).unwrap(), data);
        assert!(matches!(
            verify(&gz(b"jello\n"), None, &sha1, None),
            Err(Refused::Hash(_))
        ));
        // Incompressible data still fits under the cap.
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(gz(&noise).len() as u64 <= body_cap(noise.len() as u64));
    }
}
