//! The distinct blobs a hydration names (`WORKDIR/content/ids.flat` of `unearth hydrate`):
//! their sha1s, sorted, each once. Fetch shards read their sha1 range of it.

use std::path::Path;

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use crate::model::{Sha1, Shard};

/// The file name.
pub const IDS: &str = "ids.flat";

impl FixedRecord for Sha1 {
    const SIZE: usize = 20;
    const KIND: [u8; 4] = *b"sha1";
    fn write_to(&self, out: &mut [u8]) {
        out.copy_from_slice(self.as_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Sha1(le::id_at(b, 0))
    }
}

/// Opens the ids of the hydration whose `content` checkpoint is `dir`.
pub fn open(dir: &Path) -> Result<FlatFile<Sha1>, FlatError> {
    FlatFile::open(&dir.join(IDS))
}

/// The sha1s of `ids` that `shard` owns: a contiguous run of the sorted file.
pub fn of_shard(ids: &FlatFile<Sha1>, shard: Shard) -> impl Iterator<Item = Sha1> + '_ {
    let owned = shard.range(1 << 16);
    let lead = |s: &Sha1| u16::from_be_bytes([s.as_bytes()[0], s.as_bytes()[1]]) as usize;
    let start = ids.partition_point(|s| lead(s) < owned.start);
    ids.iter_from(start)
        .take_while(move |s| lead(s) < owned.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::flat::FlatWriter;

    #[test]
    fn shards_split_the_sorted_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<Sha1> = (0..500u32)
            .map(|i| {
                let mut b = [0u8; 20];
                b[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
                Sha1(b)
            })
            .collect();
        all.sort();
        let mut w = FlatWriter::create(&dir.path().join(IDS)).unwrap();
        for s in &all {
            w.push(s).unwrap();
        }
        w.finish().unwrap();
        let ids = open(dir.path()).unwrap();
        for n in [1, 3, 7] {
            let mut joined = Vec::new();
            for index in 0..n {
                let shard = Shard { index, count: n };
                let part: Vec<Sha1> = of_shard(&ids, shard).collect();
                assert!(part.iter().all(|s| shard.owns_sha1(s.as_bytes())));
                joined.extend(part);
            }
            assert_eq!(joined, all, "{n} shards");
        }
    }
}
