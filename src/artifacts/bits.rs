//! Bit-vectors over graph nodes (`WORKDIR/reach/dirs.bits`: one bit per node, set for the
//! directories the label pass must decode), as little-endian 64-bit words.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// File name of the reachable directories.
pub const DIRS: &str = "dirs.bits";

/// A bit-vector over nodes, settable from several threads.
pub struct AtomicBits(Vec<AtomicU64>);

impl AtomicBits {
    /// `n` zero bits.
    pub fn new(n: usize) -> Self {
        Self((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `i`; true if it was clear. Bits past the end are ignored.
    pub fn set(&self, i: usize) -> bool {
        let mask = 1u64 << (i % 64);
        match self.0.get(i / 64) {
            Some(w) => w.fetch_or(mask, Ordering::Relaxed) & mask == 0,
            None => false,
        }
    }

    /// Whether bit `i` is set.
    pub fn get(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (i % 64)) != 0)
    }

    /// The words, for writing.
    pub fn into_words(self) -> Vec<u64> {
        self.0.into_iter().map(AtomicU64::into_inner).collect()
    }
}

/// Writes words as little-endian bytes.
pub fn write(path: &Path, words: &[u64]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for w in words {
        f.write_all(&w.to_le_bytes())?;
    }
    f.flush()
}

/// A read-only window of a bit-vector over nodes: the bits of one node range, read alone so
/// that a shard's job reads its part of the file, not the whole (6 GB at full scale).
#[derive(Debug, Clone)]
pub struct Bits {
    nodes: std::ops::Range<usize>,
    first_word: usize,
    words: Vec<u64>,
}

impl Bits {
    /// Reads the bits of `nodes` from a file written by [`write()`].
    pub fn read_range(path: &Path, nodes: std::ops::Range<usize>) -> std::io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let file_words = (file.metadata()?.len() / 8) as usize;
        let first_word = (nodes.start / 64).min(file_words);
        let end_word = nodes.end.div_ceil(64).min(file_words).max(first_word);
        let mut bytes = vec![0u8; (end_word - first_word) * 8];
        file.read_exact_at(&mut bytes, first_word as u64 * 8)?;
        Ok(Self {
            nodes,
            first_word,
            words: bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                })
                .collect(),
        })
    }

    /// A window over `nodes` of the bits in `words` (bit i of the vector is node i).
    /// The vector is kept, trimmed to the window, not copied.
    pub fn from_words(mut words: Vec<u64>, nodes: std::ops::Range<usize>) -> Self {
        let first_word = (nodes.start / 64).min(words.len());
        words.truncate(nodes.end.div_ceil(64).max(first_word));
        words.drain(..first_word);
        Self {
            nodes,
            first_word,
            words,
        }
    }

    /// Indices of the set bits in the window's node range, in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.first_word;
        self.words
            .iter()
            .enumerate()
            .flat_map(move |(wi, &w)| {
                let mut w = w;
                std::iter::from_fn(move || {
                    if w == 0 {
                        return None;
                    }
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    Some((first + wi) * 64 + b)
                })
            })
            .filter(|n| self.nodes.contains(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_only_their_range() {
        let bits = AtomicBits::new(300);
        for i in [0, 63, 64, 130, 200, 299] {
            bits.set(i);
        }
        assert!(!bits.set(320), "past the end is ignored");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        write(&path, &bits.into_words()).unwrap();
        let all: Vec<usize> = Bits::read_range(&path, 0..300).unwrap().ones().collect();
        assert_eq!(all, [0, 63, 64, 130, 200, 299]);
        let mid: Vec<usize> = Bits::read_range(&path, 63..201).unwrap().ones().collect();
        assert_eq!(mid, [63, 64, 130, 200]);
        assert_eq!(Bits::read_range(&path, 131..200).unwrap().ones().count(), 0);
    }
}
