//! External sorting: any number of records in a fixed amount of memory.
//!
//! A [`Sorter`] buffers records up to a byte budget; when the buffer is full it sorts it (on
//! all threads) and spills it to a run file (zstd-compressed, length-prefixed records) in a
//! folder of its own. [`Sorter::finish`] then returns every record in order: from memory when
//! nothing was spilled, otherwise by a k-way merge of the runs (and the last buffer), reading
//! each run through a small buffer. Memory is the budget plus one read buffer per run; runs
//! are merged in passes of at most [`MAX_FAN_IN`] when there are more.
//!
//! This is what keeps the plan and the match independent of the input's size: they stream
//! rows into sorters and read groups back in key order, instead of holding hash maps.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

/// A record a [`Sorter`] can spill: ordered, and written to and read from bytes.
pub trait Record: Ord + Send + Sized {
    /// Appends the record's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a record back from the bytes [`Record::encode`] wrote.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Bytes the record takes in memory (for the budget), roughly.
    fn mem_size(&self) -> usize;
}

/// Errors of external sorting.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    /// A run file could not be written or read.
    #[error("sort run {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A run file holds bytes that are not a record.
    #[error("sort run {0}: a record cannot be read back")]
    Corrupt(PathBuf),
}

/// Runs merged at once; more runs are first merged into fewer.
pub const MAX_FAN_IN: usize = 64;

/// Read buffer per run during a merge.
const RUN_BUFFER: usize = 256 << 10;

/// Sorts records of type `T` within a memory budget.
pub struct Sorter<T: Record> {
    dir: PathBuf,
    budget: usize,
    buffer: Vec<T>,
    buffered: usize,
    runs: Vec<PathBuf>,
    dedup: bool,
    /// Records pushed.
    pub pushed: u64,
}

impl<T: Record> Sorter<T> {
    /// A sorter spilling into `dir` (created; the caller removes it) once `budget` bytes are
    /// buffered. With `dedup`, equal records come out once.
    pub fn new(dir: &Path, budget: usize, dedup: bool) -> Result<Self, SortError> {
        std::fs::create_dir_all(dir).map_err(|source| SortError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            budget: budget.max(1 << 16),
            buffer: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
            dedup,
            pushed: 0,
        })
    }

    /// Adds a record.
    pub fn push(&mut self, record: T) -> Result<(), SortError> {
        self.buffered += record.mem_size() + std::mem::size_of::<T>();
        self.buffer.push(record);
        self.pushed += 1;
        if self.buffered >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Runs spilled so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn sort_buffer(&mut self) {
        self.buffer.par_sort_unstable();
        if self.dedup {
            self.buffer.dedup();
        }
    }

    fn spill(&mut self) -> Result<(), SortError> {
        self.sort_buffer();
        let path = self.dir.join(format!("run-{:06}.zst", self.runs.len()));
        write_run(&path, self.buffer.drain(..))?;
        self.buffered = 0;
        self.runs.push(path);
        Ok(())
    }

    /// Every record, in order.
    pub fn finish(mut self) -> Result<Sorted<T>, SortError> {
        if self.runs.is_empty() {
            self.sort_buffer();
            return Ok(Sorted {
                inner: Inner::Memory(std::mem::take(&mut self.buffer).into_iter()),
                dedup: false,
                last: None,
            });
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        // Merge passes until one pass can take every run.
        let mut level = 0;
        while self.runs.len() > MAX_FAN_IN {
            let mut next = Vec::new();
            for (i, group) in self.runs.chunks(MAX_FAN_IN).enumerate() {
                let path = self.dir.join(format!("merge-{level}-{i:06}.zst"));
                let mut out = RunWriter::create(&path)?;
                let mut last: Option<T> = None;
                for r in Merge::open(group)? {
                    let t = r?;
                    if self.dedup && last.as_ref() == Some(&t) {
                        continue;
                    }
                    out.write(&t)?;
                    last = Some(t);
                }
                out.finish()?;
                for p in group {
                    let _ = std::fs::remove_file(p);
                }
                next.push(path);
            }
            self.runs = next;
            level += 1;
        }
        Ok(Sorted {
            inner: Inner::Merge(Merge::open(&self.runs)?),
            dedup: self.dedup,
            last: None,
        })
    }
}

/// Writes records to a run file.
struct RunWriter {
    path: PathBuf,
    out: zstd::stream::AutoFinishEncoder<'static, BufWriter<File>>,
    bytes: Vec<u8>,
}

impl RunWriter {
    fn create(path: &Path) -> Result<Self, SortError> {
        let io = |source| SortError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::create(path).map_err(io)?;
        let out = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, file), 1)
            .map_err(io)?
            .auto_finish();
        Ok(Self {
            path: path.to_owned(),
            out,
            bytes: Vec::new(),
        })
    }

    fn write<T: Record>(&mut self, t: &T) -> Result<(), SortError> {
        self.bytes.clear();
        t.encode(&mut self.bytes);
        let len = (self.bytes.len() as u32).to_le_bytes();
        let io = |source| SortError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.write_all(&len).map_err(io)?;
        self.out.write_all(&self.bytes).map_err(io)
    }

    fn finish(mut self) -> Result<(), SortError> {
        self.out.flush().map_err(|source| SortError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn write_run<T: Record>(path: &Path, records: impl Iterator<Item = T>) -> Result<(), SortError> {
    let mut w = RunWriter::create(path)?;
    for r in records {
        w.write(&r)?;
    }
    w.finish()
}

/// Reads a run file back.
struct RunReader {
    path: PathBuf,
    input: zstd::stream::read::Decoder<'static, BufReader<File>>,
    bytes: Vec<u8>,
}

impl RunReader {
    fn open(path: &Path) -> Result<Self, SortError> {
        let io = |source| SortError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let input =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(RUN_BUFFER, file))
                .map_err(io)?;
        Ok(Self {
            path: path.to_owned(),
            input,
            bytes: Vec::new(),
        })
    }

    fn next<T: Record>(&mut self) -> Result<Option<T>, SortError> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(source) => {
                return Err(SortError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        self.bytes.resize(u32::from_le_bytes(len) as usize, 0);
        self.input
            .read_exact(&mut self.bytes)
            .map_err(|source| SortError::Io {
                path: self.path.clone(),
                source,
            })?;
        T::decode(&self.bytes)
            .map(Some)
            .ok_or_else(|| SortError::Corrupt(self.path.clone()))
    }
}

/// A k-way merge of runs.
struct Merge<T: Record> {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Reverse<(T, usize)>>,
}

impl<T: Record> Merge<T> {
    fn open(paths: &[PathBuf]) -> Result<Self, SortError> {
        let mut readers = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let mut r = RunReader::open(p)?;
            if let Some(t) = r.next()? {
                heap.push(Reverse((t, i)));
            }
            readers.push(r);
        }
        Ok(Self { readers, heap })
    }
}

impl<T: Record> Iterator for Merge<T> {
    type Item = Result<T, SortError>;
    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((t, i)) = self.heap.pop()?;
        match self.readers[i].next() {
            Ok(Some(n)) => self.heap.push(Reverse((n, i))),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(t))
    }
}

enum Inner<T: Record> {
    Memory(std::vec::IntoIter<T>),
    Merge(Merge<T>),
}

/// Records in order, from a [`Sorter`].
pub struct Sorted<T: Record> {
    inner: Inner<T>,
    dedup: bool,
    last: Option<T>,
}

impl<T: Record + Clone> Iterator for Sorted<T> {
    type Item = Result<T, SortError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = match &mut self.inner {
                Inner::Memory(it) => return it.next().map(Ok),
                Inner::Merge(m) => m.next()?,
            };
            let t = match item {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            if self.dedup && self.last.as_ref() == Some(&t) {
                continue;
            }
            if self.dedup {
                self.last = Some(t.clone());
            }
            return Some(Ok(t));
        }
    }
}

/// Byte strings as records (sorted bytewise).
impl Record for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
    fn mem_size(&self) -> usize {
        self.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sorts_and_dedups_beyond_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let items: Vec<Vec<u8>> = (0..200_000)
            .map(|_| format!("k{:05}", rng.random_range(0..50_000u32)).into_bytes())
            .collect();
        // A small budget forces many runs, and more than one merge pass.
        let mut s = Sorter::new(dir.path(), 1 << 16, true).unwrap();
        for i in &items {
            s.push(i.clone()).unwrap();
        }
        assert!(s.runs() > MAX_FAN_IN, "{} runs", s.runs());
        let got: Vec<Vec<u8>> = s.finish().unwrap().map(Result::unwrap).collect();
        let mut want = items.clone();
        want.sort();
        want.dedup();
        assert_eq!(got, want);
        // Without dedup, in memory.
        let mut s = Sorter::new(&dir.path().join("m"), 1 << 30, false).unwrap();
        for i in items.iter().take(1000) {
            s.push(i.clone()).unwrap();
        }
        let got: Vec<Vec<u8>> = s.finish().unwrap().map(Result::unwrap).collect();
        let mut want: Vec<Vec<u8>> = items.iter().take(1000).cloned().collect();
        want.sort();
        assert_eq!(got, want);
    }
}
