//! File contents of synthetic repositories: sizes drawn from a lognormal law (median ~4 kB,
//! as in real code), bytes made on demand from a seed, so that nothing holds them.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::hashes::ContentHashes;

/// Median content size in bytes.
pub const MEDIAN_SIZE: f64 = 4096.0;
/// Spread of the log of the size (mean ~1.7x the median, a long tail).
const LOG_SPREAD: f64 = 1.0;
/// Largest size drawn.
const MAX_SIZE: u64 = 4 << 20;

/// What a blob's bytes are made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Source-like text.
    Text,
    /// Random bytes (images, archives).
    Binary,
    /// A symbolic link: the bytes are its target.
    Link(Arc<[u8]>),
    /// A license file: the SPDX text of [`LICENSES`]`[i]`, its placeholders filled from the
    /// seed (year, holders), so that each repository's is its own blob.
    License(u8),
}

/// The licenses synthetic repositories carry, with their shares (GitHub's most common).
pub const LICENSES: [(&str, f64); 8] = [
    ("MIT", 0.45),
    ("Apache-2.0", 0.2),
    ("GPL-3.0-or-later", 0.1),
    ("BSD-3-Clause", 0.07),
    ("GPL-2.0-or-later", 0.06),
    ("BSD-2-Clause", 0.04),
    ("MPL-2.0", 0.04),
    ("ISC", 0.04),
];

/// A license file for a new repository: one of [`LICENSES`] by its share.
pub fn new_license(rng: &mut ChaCha8Rng) -> Spec {
    let mut roll: f64 = rng.random();
    let mut i = LICENSES.len() - 1;
    for (j, (_, share)) in LICENSES.iter().enumerate() {
        if roll < *share {
            i = j;
            break;
        }
        roll -= share;
    }
    let mut spec = Spec {
        seed: rng.random(),
        len: 0,
        kind: Kind::License(i as u8),
    };
    spec.len = bytes(&spec).len() as u64;
    spec
}

/// The canonical SPDX text of `id` (empty when the list has none).
pub fn spdx_text(id: &str) -> &'static str {
    spdx::text::LICENSE_TEXTS
        .iter()
        .find(|(n, _)| *n == id)
        .map_or("", |t| t.1)
}

/// `text` with its SPDX placeholders filled in as a repository's copy has them: `<year>` by
/// `year`, any other one-line `<...>` shorter than 40 bytes (`<copyright holders>`,
/// `<owner>`) by `holder`.
pub fn fill_placeholders(text: &str, year: &str, holder: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>').map(|c| open + c) {
            Some(c) if !rest[open..c].contains('\n') && c - open < 40 => {
                out.push_str(&rest[..open]);
                out.push_str(if &rest[open..=c] == "<year>" {
                    year
                } else {
                    holder
                });
                rest = &rest[c + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of license `i` with its placeholders filled from `seed`.
fn license_text(i: u8, seed: u64) -> Vec<u8> {
    let id = LICENSES[i as usize % LICENSES.len()].0;
    let year = (2000 + seed % 25).to_string();
    let holder = format!("Author {:06x} and contributors", seed >> 40);
    fill_placeholders(spdx_text(id), &year, &holder).into_bytes()
}

/// A blob, by what makes its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    /// Seed of the bytes.
    pub seed: u64,
    /// Length in bytes (links: the target's).
    pub len: u64,
    /// What the bytes are.
    pub kind: Kind,
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A lognormal size: median [`MEDIAN_SIZE`], 1% empty files, capped at 4 MiB.
pub fn size(rng: &mut ChaCha8Rng) -> u64 {
    if rng.random_bool(0.01) {
        return 0;
    }
    let s = MEDIAN_SIZE * (LOG_SPREAD * normal(rng)).exp();
    (s as u64).clamp(1, MAX_SIZE)
}

/// A new text or binary blob (3% binary).
pub fn new_blob(rng: &mut ChaCha8Rng) -> Spec {
    let kind = if rng.random_bool(0.03) {
        Kind::Binary
    } else {
        Kind::Text
    };
    Spec {
        seed: rng.random(),
        len: size(rng),
        kind,
    }
}

/// An edit of `old`: new bytes, a size near the old one.
pub fn edited(rng: &mut ChaCha8Rng, old: &Spec) -> Spec {
    if let Kind::License(_) = old.kind {
        // A license edit changes the year or the holders; the length follows the text.
        let mut spec = Spec {
            seed: rng.random(),
            len: 0,
            kind: old.kind.clone(),
        };
        spec.len = bytes(&spec).len() as u64;
        return spec;
    }
    let factor = (0.15 * normal(rng)).exp();
    let len = ((old.len.max(16) as f64) * factor) as u64;
    Spec {
        seed: rng.random(),
        len: len.clamp(1, MAX_SIZE),
        kind: old.kind.clone(),
    }
}

const TOKENS: &[&[u8]] = &[
    b"let ",
    b"const ",
    b"return ",
    b"if ",
    b"else ",
    b"for ",
    b"while ",
    b"fn ",
    b"def ",
    b"class ",
    b"import ",
    b"value",
    b"result",
    b"index",
    b"count",
    b"data",
    b"self.",
    b"this.",
    b"(",
    b")",
    b"[",
    b"]",
    b"{",
    b"}",
    b" = ",
    b" + ",
    b" - ",
    b" * ",
    b" == ",
    b", ",
    b";",
    b"0",
    b"1",
    b"42",
    b"\"text\"",
    b"name",
    b"item",
    b"items",
    b"error",
    b"config",
    b"parse",
];

/// A xorshift generator: the bytes of big blobs are made at memory speed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The bytes of `spec`.
pub fn bytes(spec: &Spec) -> Vec<u8> {
    let len = spec.len as usize;
    // SplitMix64 of the seed: nearby seeds start far apart.
    let mut z = spec.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut r = XorShift((z ^ (z >> 31)) | 1);
    match &spec.kind {
        Kind::Link(target) => target.to_vec(),
        Kind::License(i) => license_text(*i, spec.seed),
        Kind::Binary => {
            let mut out = Vec::with_capacity(len + 8);
            while out.len() < len {
                out.extend_from_slice(&r.next().to_le_bytes());
            }
            out.truncate(len);
            out
        }
        Kind::Text => {
            let mut out = Vec::with_capacity(len + 64);
            // A seeded header first, so that two blobs of one length (above a few bytes)
            // do not share their bytes.
            out.extend_from_slice(format!("// {:016x}\n", r.next()).as_bytes());
            let mut col = 0;
            while out.len() < len {
                let x = r.next();
                if col == 0 {
                    let indent = (x & 3) as usize * 4;
                    out.extend(std::iter::repeat_n(b' ', indent));
                }
                let t = TOKENS[(x >> 8) as usize % TOKENS.len()];
                out.extend_from_slice(t);
                col += 1;
                if col > 4 + ((x >> 16) & 7) {
                    out.push(b'\n');
                    col = 0;
                }
            }
            out.truncate(len);
            out
        }
    }
}

/// Every hash of `spec`'s bytes.
pub fn hashes(spec: &Spec) -> ContentHashes {
    ContentHashes::of(&bytes(spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sizes_have_the_median_and_bytes_the_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut sizes: Vec<u64> = (0..20_001).map(|_| size(&mut rng)).collect();
        sizes.sort_unstable();
        let median = sizes[10_000] as f64;
        assert!((3000.0..5500.0).contains(&median), "median {median}");
        for len in [0, 1, 17, 5000] {
            for kind in [Kind::Text, Kind::Binary] {
                let s = Spec { seed: 9, len, kind };
                assert_eq!(bytes(&s).len() as u64, len);
                assert_eq!(bytes(&s), bytes(&s), "bytes are a function of the spec");
            }
        }
        let a = Spec {
            seed: 1,
            len: 100,
            kind: Kind::Text,
        };
        let b = Spec {
            seed: 2,
            len: 100,
            kind: Kind::Text,
        };
        assert_ne!(bytes(&a), bytes(&b));
    }
}
