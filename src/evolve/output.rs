//! The pairs written out: JSONL (gzip), chat JSONL (gzip), Parquet, each repository's
//! status (`repos.jsonl`), and a dataset card.
//!
//! Each batch of repositories is written as a part ([`PartWriter`], into the checkpoint
//! folder of [`super::parts`]); [`assemble`] joins the parts into the output: the gzip files
//! and `repos.jsonl` by concatenation (a gzip file of several members, which gzip readers
//! read whole; a decoder of one member, as `flate2::GzDecoder`, stops after the first), the
//! Parquet files row group by row group. Every part file is checked
//! against its recorded size and XXH3-128 as it is read. The output is written into a
//! staging folder beside the output folder and renamed into place when complete, with
//! `manifest.json` (the run's key, counts, and every file with its size and XXH3-128) as
//! unearth's marker: an existing output folder is replaced only when it carries that marker.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, LargeStringBuilder, RecordBatch, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema};
use flate2::write::GzEncoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{EvolveCounts, EvolveError};
use crate::config::EvolveFormat;
use crate::pipeline::checkpoint::hash_file;

/// Records buffered before a Parquet row group is written, at most...
const ROWS_PER_GROUP: usize = 64;
/// ...and bytes of their texts (one codebase alone may be 100 MiB).
const BYTES_PER_GROUP: usize = 256 << 20;
/// Name of the marker.
const MANIFEST: &str = "manifest.json";
/// `kind` of the marker.
const KIND: &str = "unearth-evolve";
/// Name of a part's record.
pub const PART: &str = "part.json";
/// `kind` of a part's record.
const PART_KIND: &str = "unearth-evolve-part";
/// Repositories shown in the card (all are in `repos.jsonl`).
const CARD_REPOS: usize = 200;
const JSONL: &str = "pairs.jsonl.gz";
const CHAT: &str = "chat.jsonl.gz";
const PARQUET: &str = "pairs.parquet";
const REPOS: &str = "repos.jsonl";

/// One pair, as written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The repository's slug.
    pub repo_name: String,
    /// The from-release's tag.
    pub from_version: String,
    /// The to-release's tag.
    pub to_version: String,
    /// The codebase at the from-release.
    pub input_text: String,
    /// The diff to the to-release.
    pub output_text: String,
    /// `input_text` bytes / 4.
    pub input_tokens_approx: u64,
    /// `output_text` bytes / 4.
    pub output_tokens_approx: u64,
    /// Files of the codebase (after the filters).
    pub num_files_in_codebase: u64,
    /// Files changed (after the filters).
    pub num_files_changed: u64,
    /// Dependencies included.
    pub num_dependencies: u64,
    /// The origin's URL.
    pub origin_url: String,
    /// The snapshot the tags were read from.
    pub snapshot_id: String,
    /// SWHID of the from-revision.
    pub from_revision: String,
    /// SWHID of the to-revision.
    pub to_revision: String,
    /// SWHID of the from-release (annotated tags).
    pub from_release: Option<String>,
    /// SWHID of the to-release (annotated tags).
    pub to_release: Option<String>,
}

const TEXT_COLUMNS: [&str; 11] = [
    "repo_name",
    "from_version",
    "to_version",
    "input_text",
    "output_text",
    "origin_url",
    "snapshot_id",
    "from_revision",
    "to_revision",
    "from_release",
    "to_release",
];
const NUMBER_COLUMNS: [&str; 5] = [
    "input_tokens_approx",
    "output_tokens_approx",
    "num_files_in_codebase",
    "num_files_changed",
    "num_dependencies",
];

fn schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = TEXT_COLUMNS
        .iter()
        // 64-bit offsets: a row group's texts may pass 2 GiB.
        .map(|n| Field::new(*n, DataType::LargeUtf8, n.ends_with("_release")))
        .collect();
    fields.extend(
        NUMBER_COLUMNS
            .iter()
            .map(|n| Field::new(*n, DataType::UInt64, false)),
    );
    Arc::new(Schema::new(fields))
}

fn batch(records: &[Record]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let texts = |f: &dyn Fn(&Record) -> Option<&str>| -> ArrayRef {
        let mut b = LargeStringBuilder::new();
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let numbers = |f: &dyn Fn(&Record) -> u64| -> ArrayRef {
        let mut b = UInt64Builder::new();
        for r in records {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let columns = vec![
        texts(&|r| Some(&r.repo_name)),
        texts(&|r| Some(&r.from_version)),
        texts(&|r| Some(&r.to_version)),
        texts(&|r| Some(&r.input_text)),
        texts(&|r| Some(&r.output_text)),
        texts(&|r| Some(&r.origin_url)),
        texts(&|r| Some(&r.snapshot_id)),
        texts(&|r| Some(&r.from_revision)),
        texts(&|r| Some(&r.to_revision)),
        texts(&|r| r.from_release.as_deref()),
        texts(&|r| r.to_release.as_deref()),
        numbers(&|r| r.input_tokens_approx),
        numbers(&|r| r.output_tokens_approx),
        numbers(&|r| r.num_files_in_codebase),
        numbers(&|r| r.num_files_changed),
        numbers(&|r| r.num_dependencies),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// A gzip stream behind a large buffer: the encoder zeroes its output space on every write
/// it gets, and JSON arrives in small pieces (unbuffered, zeroing was a third of the run).
type Gz = BufWriter<GzEncoder<BufWriter<File>>>;

/// One message of a chat record.
#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// A chat record, borrowing the pair's texts.
#[derive(serde::Serialize)]
struct Chat<'a> {
    messages: [Message<'a>; 3],
    repo_name: &'a str,
    from_version: &'a str,
    to_version: &'a str,
}

/// A JSON line of either kind, for one writer of both.
mod erased {
    /// A value written as one line of JSON.
    pub trait Line: Sync {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize + Sync> Line for T {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(w, self).map_err(std::io::Error::from)
        }
    }
}

/// What became of one repository: its pairs, and why some or all are missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoStatus {
    /// The slug asked for.
    pub repo: String,
    /// The origin URL found, if any.
    pub origin_url: Option<String>,
    /// Pairs written.
    pub pairs: u64,
    /// Why there are fewer pairs than tag pairs (no origin, no pair, a pair with no change,
    /// a tree over the walk cap).
    pub notes: Vec<String>,
}

/// Size and XXH3-128 of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSum {
    /// Bytes.
    pub size: u64,
    /// XXH3-128, hex.
    #[serde(with = "hex128")]
    pub xxh3: u128,
}

mod hex128 {
    pub fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// `manifest.json` of an output, and `part.json` of a part.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `unearth-evolve` or `unearth-evolve-part`.
    pub kind: String,
    /// The run's key ([`super::parts::key`]); outputs of older versions have none.
    #[serde(default)]
    pub key: Option<String>,
    /// The batch, for a part.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Counts.
    pub counts: EvolveCounts,
    /// Every file beside the record, by name.
    pub files: BTreeMap<String, FileSum>,
}

impl Manifest {
    /// Reads the record at `path`; `None` when it is missing or not one.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// Writes the output of one batch into a staging folder, renamed into place when complete.
pub struct PartWriter {
    dir: PathBuf,
    staging: PathBuf,
    jsonl: Option<Gz>,
    chat: Option<Gz>,
    parquet: Option<ArrowWriter<File>>,
    repos: BufWriter<File>,
    pending: Vec<Record>,
    pending_bytes: usize,
    system: String,
    /// Whether the staging folder became the part (else it is removed when dropped).
    done: bool,
}

fn gz(path: &Path) -> Result<Gz, EvolveError> {
    let f = File::create(path).map_err(|e| EvolveError::io(path, e))?;
    Ok(BufWriter::with_capacity(
        1 << 20,
        GzEncoder::new(
            BufWriter::new(f),
            // The fast level: the texts run to gigabytes and compression is the run's main
            // CPU cost (the default level is about three times slower for ~10% smaller files).
            flate2::Compression::fast(),
        ),
    ))
}

fn parquet_writer(path: &Path) -> Result<ArrowWriter<File>, EvolveError> {
    let f = File::create(path).map_err(|e| EvolveError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    ArrowWriter::try_new(f, schema(), Some(props))
        .map_err(|e| EvolveError::io(path, std::io::Error::other(e)))
}

/// A new, empty staging folder beside `dir` (same file system, so that the rename is
/// atomic), or beside it with `what` as the suffix's word.
fn sibling(dir: &Path, what: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "evolve".into());
    dir.with_file_name(format!(
        ".{name}.{what}-{}",
        crate::artifacts::unique_suffix()
    ))
}

fn staging_for(dir: &Path) -> Result<PathBuf, EvolveError> {
    let staging = sibling(dir, "tmp");
    // `create_dir` (not `_all`): it fails rather than share a folder with another process.
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EvolveError::io(parent, e))?;
    }
    std::fs::create_dir(&staging).map_err(|e| EvolveError::io(&staging, e))?;
    Ok(staging)
}

impl PartWriter {
    /// Starts writing the part that will be `dir`.
    pub fn create(dir: &Path, formats: &[EvolveFormat], system: &str) -> Result<Self, EvolveError> {
        let staging = staging_for(dir)?;
        let has = |f| formats.contains(&f);
        let repos_path = staging.join(REPOS);
        let repos = File::create(&repos_path).map_err(|e| EvolveError::io(&repos_path, e))?;
        Ok(Self {
            dir: dir.to_owned(),
            jsonl: has(EvolveFormat::Jsonl)
                .then(|| gz(&staging.join(JSONL)))
                .transpose()?,
            chat: has(EvolveFormat::Chat)
                .then(|| gz(&staging.join(CHAT)))
                .transpose()?,
            parquet: has(EvolveFormat::Parquet)
                .then(|| parquet_writer(&staging.join(PARQUET)))
                .transpose()?,
            repos: BufWriter::new(repos),
            staging,
            pending: Vec::new(),
            pending_bytes: 0,
            system: system.to_owned(),
            done: false,
        })
    }

    /// Records what became of one repository (after its pairs).
    pub fn repo(&mut self, status: &RepoStatus) -> Result<(), EvolveError> {
        let path = self.staging.join(REPOS);
        serde_json::to_writer(&mut self.repos, status)
            .map_err(|e| EvolveError::io(&path, e.into()))?;
        self.repos
            .write_all(b"\n")
            .map_err(|e| EvolveError::io(&path, e))
    }

    /// Writes one record: the two gzip streams side by side (they are most of the cost).
    pub fn write(&mut self, r: Record) -> Result<(), EvolveError> {
        let Self {
            jsonl,
            chat,
            staging,
            system,
            ..
        } = self;
        let line = |w: &mut Option<Gz>, name: &str, value: &dyn erased::Line| {
            let Some(w) = w else { return Ok(()) };
            let io = |e: std::io::Error| EvolveError::io(&staging.join(name), e);
            value.write_to(&mut *w).map_err(io)?;
            w.write_all(b"\n").map_err(io)
        };
        let chat_line = Chat {
            messages: [
                Message {
                    role: "system",
                    content: system,
                },
                Message {
                    role: "user",
                    content: &r.input_text,
                },
                Message {
                    role: "assistant",
                    content: &r.output_text,
                },
            ],
            repo_name: &r.repo_name,
            from_version: &r.from_version,
            to_version: &r.to_version,
        };
        let (a, b) = rayon::join(|| line(jsonl, JSONL, &r), || line(chat, CHAT, &chat_line));
        a?;
        b?;
        if self.parquet.is_some() {
            self.pending_bytes += r.input_text.len() + r.output_text.len();
            self.pending.push(r);
            if self.pending.len() >= ROWS_PER_GROUP || self.pending_bytes >= BYTES_PER_GROUP {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EvolveError> {
        let path = self.staging.join(PARQUET);
        if let (Some(w), false) = (&mut self.parquet, self.pending.is_empty()) {
            let b = batch(&self.pending)
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
            write_group(w, &b, &path)?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Closes every file, writes `part.json` and renames the part into place.
    pub fn finish(
        mut self,
        counts: &EvolveCounts,
        key: &str,
        batch: usize,
    ) -> Result<(), EvolveError> {
        self.flush()?;
        close_gz(self.jsonl.take(), &self.staging.join(JSONL))?;
        close_gz(self.chat.take(), &self.staging.join(CHAT))?;
        if let Some(w) = self.parquet.take() {
            let path = self.staging.join(PARQUET);
            w.close()
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
        }
        let path = self.staging.join(REPOS);
        self.repos.flush().map_err(|e| EvolveError::io(&path, e))?;
        let record = Manifest {
            kind: PART_KIND.into(),
            key: Some(key.to_owned()),
            batch: Some(batch),
            counts: counts.clone(),
            files: file_sums(&self.staging)?,
        };
        seal(&self.staging, &record, PART)?;
        if let Err(e) = std::fs::rename(&self.staging, &self.dir) {
            // Another process wrote the same batch first (a run beside its Slurm slices): its
            // part stands, this one is dropped.
            let theirs = Manifest::read(&self.dir.join(PART));
            if theirs.is_some_and(|m| m.key == record.key && m.batch == record.batch) {
                return Ok(());
            }
            return Err(EvolveError::io(&self.dir, e));
        }
        self.done = true;
        sync_parent(&self.dir)
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // A batch that failed leaves no staging folder behind (it is unearth's own).
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn close_gz(w: Option<Gz>, path: &Path) -> Result<(), EvolveError> {
    if let Some(w) = w {
        let encoder = w
            .into_inner()
            .map_err(|e| EvolveError::io(path, e.into_error()))?;
        let mut inner = encoder.finish().map_err(|e| EvolveError::io(path, e))?;
        inner.flush().map_err(|e| EvolveError::io(path, e))?;
    }
    Ok(())
}

/// Writes `b` as one row group (the writer would otherwise buffer up to a million rows).
fn write_group(w: &mut ArrowWriter<File>, b: &RecordBatch, path: &Path) -> Result<(), EvolveError> {
    let err = |e: parquet::errors::ParquetError| EvolveError::io(path, std::io::Error::other(e));
    w.write(b).map_err(err)?;
    w.flush().map_err(err)
}

/// Size and hash of every file in `dir`, by name.
fn file_sums(dir: &Path) -> Result<BTreeMap<String, FileSum>, EvolveError> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(|e| EvolveError::io(dir, e))? {
        let p = e.map_err(|e| EvolveError::io(dir, e))?.path();
        let (size, xxh3) = hash_file(&p).map_err(|e| EvolveError::io(&p, e))?;
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        files.insert(name, FileSum { size, xxh3 });
    }
    Ok(files)
}

/// Writes `record` as `dir/name` and flushes the folder to disk.
fn seal(dir: &Path, record: &Manifest, name: &str) -> Result<(), EvolveError> {
    let path = dir.join(name);
    let text = serde_json::to_vec_pretty(record).map_err(|e| EvolveError::io(&path, e.into()))?;
    std::fs::write(&path, text).map_err(|e| EvolveError::io(&path, e))?;
    sync_dir(dir).map_err(|e| EvolveError::io(dir, e))
}

fn sync_parent(dir: &Path) -> Result<(), EvolveError> {
    match dir.parent() {
        Some(parent) => File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| EvolveError::io(parent, e)),
        None => Ok(()),
    }
}

/// The counts of the output at `out` when it is complete and was written for `key`: every
/// file it lists is there with its size.
pub fn current(out: &Path, key: &str) -> Option<EvolveCounts> {
    let m = Manifest::read(&out.join(MANIFEST))?;
    let complete = m.kind == KIND
        && m.key.as_deref() == Some(key)
        && m.files.iter().all(|(name, sum)| {
            std::fs::metadata(out.join(name)).is_ok_and(|md| md.len() == sum.size)
        });
    complete.then_some(m.counts)
}

/// Refuses an output folder unearth did not write.
pub fn check_ours(out: &Path) -> Result<(), EvolveError> {
    if out.exists() && !is_ours(out) {
        return Err(EvolveError::Foreign(out.to_owned()));
    }
    Ok(())
}

/// Reads a part's file, checked against its record as it streams.
struct Checked<R> {
    inner: R,
    hash: xxhash_rust::xxh3::Xxh3,
    size: u64,
    want: FileSum,
    path: PathBuf,
}

impl Checked<BufReader<File>> {
    fn open(part: &Path, name: &str, want: FileSum) -> Result<Self, EvolveError> {
        let path = part.join(name);
        let f = File::open(&path).map_err(|e| EvolveError::io(&path, e))?;
        Ok(Self {
            inner: BufReader::with_capacity(1 << 20, f),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            size: 0,
            want,
            path,
        })
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

impl<R> Checked<R> {
    /// Whether what was read is the whole file as recorded.
    fn verify(&self) -> Result<(), EvolveError> {
        let got = FileSum {
            size: self.size,
            xxh3: self.hash.digest128(),
        };
        if got == self.want {
            return Ok(());
        }
        Err(EvolveError::Damaged {
            path: self.path.clone(),
            reason: format!(
                "{} bytes, XXH3 {:032x}; its part.json records {} bytes, XXH3 {:032x} (remove \
                 the part's folder to redo that batch)",
                got.size, got.xxh3, self.want.size, self.want.xxh3
            ),
        })
    }
}

/// Joins the parts (in batch order) into the output folder `out`, replacing an earlier
/// output of unearth; returns the summed counts.
/// `parts_key` is the parts' record key, `key` the records' (written in the manifest).
pub fn assemble(
    parts: &[PathBuf],
    out: &Path,
    formats: &[EvolveFormat],
    parts_key: &str,
    key: &str,
) -> Result<EvolveCounts, EvolveError> {
    check_ours(out)?;
    let mut staged = Staged {
        dir: staging_for(out)?,
        done: false,
    };
    let staging = staged.dir.clone();
    let records: Vec<(PathBuf, Manifest)> = parts
        .iter()
        .map(|p| {
            let path = p.join(PART);
            Manifest::read(&path)
                .filter(|m| m.kind == PART_KIND && m.key.as_deref() == Some(parts_key))
                .map(|m| (p.clone(), m))
                .ok_or_else(|| EvolveError::Damaged {
                    path,
                    reason: "not a part record of this run".into(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut counts = EvolveCounts::default();
    for (_, m) in &records {
        counts.add(&m.counts);
    }
    // Concatenated: gzip members and JSON lines.
    let mut names = vec![REPOS];
    if formats.contains(&EvolveFormat::Jsonl) {
        names.push(JSONL);
    }
    if formats.contains(&EvolveFormat::Chat) {
        names.push(CHAT);
    }
    for name in names {
        let path = staging.join(name);
        let mut w = BufWriter::new(File::create(&path).map_err(|e| EvolveError::io(&path, e))?);
        for (part, m) in &records {
            let want = part_file(part, m, name)?;
            let mut r = Checked::open(part, name, want)?;
            std::io::copy(&mut r, &mut w).map_err(|e| EvolveError::io(&r.path, e))?;
            r.verify()?;
        }
        w.flush().map_err(|e| EvolveError::io(&path, e))?;
    }
    if formats.contains(&EvolveFormat::Parquet) {
        let path = staging.join(PARQUET);
        let mut w = parquet_writer(&path)?;
        for (part, m) in &records {
            // Checked whole before it is parsed: Parquet reads its footer first.
            let want = part_file(part, m, PARQUET)?;
            let mut r = Checked::open(part, PARQUET, want)?;
            std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| EvolveError::io(&r.path, e))?;
            r.verify()?;
            let err = |e: parquet::errors::ParquetError| {
                EvolveError::io(&r.path, std::io::Error::other(e))
            };
            let open = || File::open(&r.path).map_err(|e| EvolveError::io(&r.path, e));
            let groups = ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(err)?
                .metadata()
                .num_row_groups();
            // One row group at a time: a batch read across groups could hold 64 codebases.
            for g in 0..groups {
                let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)
                    .map_err(err)?
                    .with_row_groups(vec![g])
                    .with_batch_size(ROWS_PER_GROUP)
                    .build()
                    .map_err(err)?;
                for b in reader {
                    let b = b.map_err(|e| EvolveError::io(&r.path, std::io::Error::other(e)))?;
                    write_group(&mut w, &b, &path)?;
                }
            }
        }
        w.close()
            .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
    }
    let card = staging.join("README.md");
    let text = card_text(&counts, &staging.join(REPOS))?;
    std::fs::write(&card, text).map_err(|e| EvolveError::io(&card, e))?;
    let manifest = Manifest {
        kind: KIND.into(),
        key: Some(key.to_owned()),
        batch: None,
        counts: counts.clone(),
        files: file_sums(&staging)?,
    };
    seal(&staging, &manifest, MANIFEST)?;
    // The old output goes aside first (under a name no one else has) and is removed only
    // once the new one is in place: at every moment one complete output exists. It is
    // checked again (a run may last hours).
    let aside = sibling(out, "old");
    let moved = out.exists();
    if moved {
        check_ours(out)?;
        std::fs::rename(out, &aside).map_err(|e| EvolveError::io(out, e))?;
    }
    if let Err(e) = std::fs::rename(&staging, out) {
        if moved {
            let _ = std::fs::rename(&aside, out);
        }
        return Err(EvolveError::io(out, e));
    }
    staged.done = true;
    sync_parent(out)?;
    if moved {
        std::fs::remove_dir_all(&aside).map_err(|e| EvolveError::io(&aside, e))?;
    }
    Ok(counts)
}

/// The recorded sum of `name` in a part.
fn part_file(part: &Path, m: &Manifest, name: &str) -> Result<FileSum, EvolveError> {
    m.files
        .get(name)
        .copied()
        .ok_or_else(|| EvolveError::Damaged {
            path: part.join(PART),
            reason: format!("lists no {name} (written with other formats?)"),
        })
}

/// A staging folder removed unless it became the output.
struct Staged {
    dir: PathBuf,
    done: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The dataset card: counts, the first repositories' pairs and notes (all are in
/// `repos.jsonl`, read line by line).
fn card_text(c: &EvolveCounts, repos: &Path) -> Result<String, EvolveError> {
    let mut s = String::from(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: pairs.parquet\n---\n\n",
    );
    s.push_str("# Release-to-release pairs, rebuilt from the Software Heritage archive\n\n");
    s.push_str(
        "Written by `unearth evolve`. One record per pair of consecutive releases: \
         `input_text` is the codebase at `from_version`, `output_text` the diff to \
         `to_version` (`git apply` accepts it; files that are binary, over a size cap or \
         unavailable are listed above the first `diff --git`, not diffed). What became of \
         every repository asked for is in `repos.jsonl`.\n\n",
    );
    s.push_str(&format!(
        "| repositories | found with pairs | pairs | directories listed | directories diffed | skipped by identity | files inlined | files listed | text bytes |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n\n",
        c.repos, c.repos_found, c.pairs, c.codebase_dirs_decoded, c.diff_dirs_decoded,
        c.diff_dirs_skipped, c.files_inlined, c.files_listed, c.text_bytes
    ));
    let f = File::open(repos).map_err(|e| EvolveError::io(repos, e))?;
    let (mut table, mut notes) = (String::new(), String::new());
    for (i, line) in BufReader::new(f).lines().enumerate() {
        if i == CARD_REPOS {
            table.push_str(&format!(
                "\n({} repositories in all: see `repos.jsonl`.)\n",
                c.repos
            ));
            break;
        }
        let line = line.map_err(|e| EvolveError::io(repos, e))?;
        let r: RepoStatus = serde_json::from_str(&line).map_err(|e| EvolveError::Damaged {
            path: repos.to_owned(),
            reason: format!("line {}: {e}", i + 1),
        })?;
        table.push_str(&format!("| {} | {} |\n", r.repo, r.pairs));
        for why in &r.notes {
            notes.push_str(&format!("- {}: {why}\n", r.repo));
        }
    }
    if !table.is_empty() {
        s.push_str("| repository | pairs |\n|---|---:|\n");
        s.push_str(&table);
        s.push('\n');
    }
    if !notes.is_empty() {
        s.push_str("Pairs not written, and why:\n\n");
        s.push_str(&notes);
    }
    Ok(s)
}

/// Flushes the entries of folder `dir` (and every file in it) to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_file() {
                File::open(&p)?.sync_all()?;
            }
        }
    }
    File::open(dir)?.sync_all()
}

/// Whether `dir` is an output folder of `unearth evolve`.
fn is_ours(dir: &Path) -> bool {
    // Read loosely: outputs of earlier versions carry other fields.
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(KIND))
}
