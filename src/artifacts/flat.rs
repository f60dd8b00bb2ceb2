//! Flat files of fixed-size records, written in order and read memory-mapped: the work
//! directory's lookup tables (pairs by key, members by pair, names by hash, entries by
//! directory and name). A lookup is a binary search over the mapped file, so a phase that
//! reads one holds no copy of it: the pages are the file's, which the kernel may drop.
//!
//! Layout: a 16-byte header (`UNEARTHF`, record size as u32, a 4-byte kind tag), then the
//! records back to back. Opening checks the header, the kind and that the length is whole
//! records, so a damaged or foreign file is an error, not garbage.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"UNEARTHF";
const HEADER: usize = 16;

/// A record of a flat file.
pub trait FixedRecord: Sized {
    /// Bytes per record.
    const SIZE: usize;
    /// A four-letter tag naming the kind of file.
    const KIND: [u8; 4];
    /// Writes exactly [`Self::SIZE`] bytes.
    fn write_to(&self, out: &mut [u8]);
    /// Reads a record from [`Self::SIZE`] bytes.
    fn read_from(bytes: &[u8]) -> Self;
}

/// Errors of flat files.
#[derive(Debug, thiserror::Error)]
pub enum FlatError {
    /// The file could not be written, opened or mapped.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a flat file of this kind.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Writes a flat file, record after record.
pub struct FlatWriter<R: FixedRecord> {
    path: PathBuf,
    out: BufWriter<File>,
    buf: Vec<u8>,
    count: u64,
    _r: PhantomData<R>,
}

impl<R: FixedRecord> FlatWriter<R> {
    /// Creates `path`.
    pub fn create(path: &Path) -> Result<Self, FlatError> {
        let io = |source| FlatError::Io {
            path: path.to_owned(),
            source,
        };
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&(R::SIZE as u32).to_le_bytes());
        header[12..16].copy_from_slice(&R::KIND);
        out.write_all(&header).map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            out,
            buf: vec![0u8; R::SIZE],
            count: 0,
            _r: PhantomData,
        })
    }

    /// Appends a record.
    pub fn push(&mut self, r: &R) -> Result<(), FlatError> {
        r.write_to(&mut self.buf);
        self.count += 1;
        self.out
            .write_all(&self.buf)
            .map_err(|source| FlatError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Finishes the file; returns the number of records.
    pub fn finish(mut self) -> Result<u64, FlatError> {
        self.out.flush().map_err(|source| FlatError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.count)
    }
}

/// A flat file, memory-mapped.
pub struct FlatFile<R: FixedRecord> {
    map: memmap2::Mmap,
    len: usize,
    path: PathBuf,
    _r: PhantomData<R>,
}

impl<R: FixedRecord> FlatFile<R> {
    /// Maps `path`, checking its header and length.
    pub fn open(path: &Path) -> Result<Self, FlatError> {
        let io = |source| FlatError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |reason: String| FlatError::Format {
            path: path.to_owned(),
            reason,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the file is a checkpoint file of unearth's, written once and never modified
        // in place; mapping it read-only is sound as long as nobody truncates it meanwhile,
        // which the work directory's rules exclude.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a flat record file".into()));
        }
        let size = u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize;
        if size != R::SIZE || map[12..16] != R::KIND {
            return Err(bad(format!(
                "records of {size} bytes, kind {:?}; expected {} bytes, kind {:?}",
                String::from_utf8_lossy(&map[12..16]),
                R::SIZE,
                String::from_utf8_lossy(&R::KIND)
            )));
        }
        if !(map.len() - HEADER).is_multiple_of(size) {
            return Err(bad("its length is not a whole number of records".into()));
        }
        let len = (map.len() - HEADER) / size;
        Ok(Self {
            map,
            len,
            path: path.to_owned(),
            _r: PhantomData,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file has no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<R> {
        (i < self.len).then(|| {
            let at = HEADER + i * R::SIZE;
            R::read_from(&self.map[at..at + R::SIZE])
        })
    }

    /// The index of the first record for which `pred` is false (records must be partitioned:
    /// every `true` before every `false`), as `slice::partition_point`.
    pub fn partition_point(&self, mut pred: impl FnMut(&R) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(r) if pred(&r) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Records in order, from `start`.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = R> + '_ {
        (start..self.len).filter_map(move |i| self.get(i))
    }
}

/// Concatenates flat files of records `R`, in order, into `out` (each checked first).
pub fn concat<R: FixedRecord>(files: &[PathBuf], out: &Path) -> Result<u64, FlatError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| FlatError::Io { path: p, source }
    };
    let w: FlatWriter<R> = FlatWriter::create(out)?;
    let mut sink = w.out;
    let mut count = 0u64;
    for f in files {
        let checked: FlatFile<R> = FlatFile::open(f)?;
        count += checked.len() as u64;
        sink.write_all(&checked.map[HEADER..]).map_err(io(out))?;
    }
    sink.flush().map_err(io(out))?;
    Ok(count)
}

/// Little-endian helpers for record layouts.
pub mod le {
    /// Reads a u64 at `at`.
    pub fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    }
    /// Reads a u32 at `at`.
    pub fn u32_at(b: &[u8], at: usize) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[at..at + 4]);
        u32::from_le_bytes(a)
    }
    /// Reads a u128 at `at`.
    pub fn u128_at(b: &[u8], at: usize) -> u128 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[at..at + 16]);
        u128::from_le_bytes(a)
    }
    /// Reads 20 bytes at `at`.
    pub fn id_at(b: &[u8], at: usize) -> [u8; 20] {
        let mut a = [0u8; 20];
        a.copy_from_slice(&b[at..at + 20]);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Clone, Copy)]
    struct Pair(u64, u32);

    impl FixedRecord for Pair {
        const SIZE: usize = 12;
        const KIND: [u8; 4] = *b"test";
        fn write_to(&self, out: &mut [u8]) {
            out[..8].copy_from_slice(&self.0.to_le_bytes());
            out[8..12].copy_from_slice(&self.1.to_le_bytes());
        }
        fn read_from(b: &[u8]) -> Self {
            Pair(le::u64_at(b, 0), le::u32_at(b, 8))
        }
    }

    #[test]
    fn written_records_are_searched_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.flat");
        let mut w = FlatWriter::create(&path).unwrap();
        for i in 0..1000u64 {
            w.push(&Pair(i * 3, i as u32)).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 1000);
        let f: FlatFile<Pair> = FlatFile::open(&path).unwrap();
        assert_eq!(f.len(), 1000);
        let i = f.partition_point(|p| p.0 < 300);
        assert_eq!(f.get(i), Some(Pair(300, 100)));
        assert_eq!(f.partition_point(|p| p.0 < 301), 101);
        assert_eq!(f.get(1000), None);
        // A damaged file is refused.
        std::fs::write(&path, b"UNEARTHF\x0c\0\0\0testxyz").unwrap();
        assert!(FlatFile::<Pair>::open(&path).is_err());
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(FlatFile::<Pair>::open(&path).is_err());
    }
}
