//! Shards: the unit a Slurm job array splits a phase into.
//!
//! A shard is `I/N`: the I-th of N contiguous, disjoint parts of the phase's input, by node id
//! range (scan, label pass), by ORC file (content join) or by sha1 range (fetch). Shards are
//! written each into its own checkpoint folder and merged into the phase's output; a run
//! without shards is the `0/1` case of the same code.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// The I-th of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Index, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole input as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The part of `0..len` this shard covers (contiguous, sizes differ by at most one).
    pub fn range(&self, len: usize) -> Range<usize> {
        // In 128 bits: len × count does not overflow for any count a configuration allows.
        let at = |i: usize| (len as u128 * i as u128 / self.count.max(1) as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// Whether a sha1 belongs to this shard (shards split the first two bytes evenly).
    pub fn owns_sha1(&self, sha1: &[u8; 20]) -> bool {
        let lead = u16::from_be_bytes([sha1[0], sha1[1]]) as usize;
        self.range(1 << 16).contains(&lead)
    }

    /// Folder name of the shard's checkpoint.
    pub fn dir_name(&self) -> String {
        format!("shard-{:04}-of-{:04}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The flag's name is the caller's (clap names it): `--shard`, `--slice`.
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 3/8");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_their_input() {
        for n in 1..9 {
            let mut covered = 0;
            for i in 0..n {
                let r = Shard { index: i, count: n }.range(1000);
                assert_eq!(r.start, covered);
                covered = r.end;
            }
            assert_eq!(covered, 1000);
            let sha = [0xffu8; 20];
            assert_eq!(
                (0..n)
                    .filter(|&i| Shard { index: i, count: n }.owns_sha1(&sha))
                    .count(),
                1
            );
        }
        assert_eq!(
            "2/5".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 5 }
        );
        for bad in ["5/5", "1", "a/b", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
