//! The pairs written out: JSONL (gzip), chat JSONL (gzip), Parquet, and a dataset card.
//!
//! Everything is written into a staging folder beside the output folder and renamed into
//! place when complete, with `manifest.json` (counts, and every file with its size and
//! XXH3-128) as unearth's marker: an existing output folder is replaced only when it carries
//! that marker.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, LargeStringBuilder, RecordBatch, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema};
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{EvolveCounts, EvolveError};
use crate::config::EvolveFormat;

/// Records buffered before a Parquet row group is written, at most...
const ROWS_PER_GROUP: usize = 64;
/// ...and bytes of their texts (one codebase alone may be 100 MiB).
const BYTES_PER_GROUP: usize = 256 << 20;
/// Name of the marker.
const MANIFEST: &str = "manifest.json";
/// `kind` of the marker.
const KIND: &str = "unearth-evolve";

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

type Gz = GzEncoder<BufWriter<File>>;

/// Writes the outputs of one run.
pub struct Writer {
    out: PathBuf,
    staging: PathBuf,
    jsonl: Option<Gz>,
    chat: Option<Gz>,
    parquet: Option<ArrowWriter<File>>,
    pending: Vec<Record>,
    pending_bytes: usize,
    system: String,
    /// Whether the staging folder became the output (else it is removed when dropped).
    done: bool,
    /// Repositories without a pair, and why.
    notes: Vec<(String, String)>,
    /// Pairs per repository.
    per_repo: std::collections::BTreeMap<String, u64>,
}

fn gz(path: &Path) -> Result<Gz, EvolveError> {
    let f = File::create(path).map_err(|e| EvolveError::io(path, e))?;
    Ok(GzEncoder::new(
        BufWriter::new(f),
        flate2::Compression::default(),
    ))
}

impl Writer {
    /// Starts writing into a staging folder beside `out`; refuses an `out` unearth did not
    /// write.
    pub fn create(out: &Path, formats: &[EvolveFormat], system: &str) -> Result<Self, EvolveError> {
        if out.exists() && !is_ours(out) {
            return Err(EvolveError::Foreign(out.to_owned()));
        }
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "evolve".into());
        let staging = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| EvolveError::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| EvolveError::io(&staging, e))?;
        let has = |f| formats.contains(&f);
        let parquet = if has(EvolveFormat::Parquet) {
            let path = staging.join("pairs.parquet");
            let f = File::create(&path).map_err(|e| EvolveError::io(&path, e))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            Some(
                ArrowWriter::try_new(f, schema(), Some(props))
                    .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?,
            )
        } else {
            None
        };
        Ok(Self {
            out: out.to_owned(),
            jsonl: if has(EvolveFormat::Jsonl) {
                Some(gz(&staging.join("pairs.jsonl.gz"))?)
            } else {
                None
            },
            chat: if has(EvolveFormat::Chat) {
                Some(gz(&staging.join("chat.jsonl.gz"))?)
            } else {
                None
            },
            staging,
            parquet,
            pending: Vec::new(),
            pending_bytes: 0,
            system: system.to_owned(),
            done: false,
            notes: Vec::new(),
            per_repo: Default::default(),
        })
    }

    /// Records that `repo` gave no pair, and why.
    pub fn note(&mut self, repo: &str, why: &str) {
        self.notes.push((repo.to_owned(), why.to_owned()));
    }

    /// Writes one record.
    pub fn write(&mut self, r: &Record) -> Result<(), EvolveError> {
        *self.per_repo.entry(r.repo_name.clone()).or_default() += 1;
        let io = |p: &str, e: std::io::Error| EvolveError::io(&self.staging.join(p), e);
        if let Some(w) = &mut self.jsonl {
            serde_json::to_writer(&mut *w, r).map_err(|e| io("pairs.jsonl.gz", e.into()))?;
            w.write_all(b"\n").map_err(|e| io("pairs.jsonl.gz", e))?;
        }
        if let Some(w) = &mut self.chat {
            let chat = serde_json::json!({
                "messages": [
                    {"role": "system", "content": self.system},
                    {"role": "user", "content": r.input_text},
                    {"role": "assistant", "content": r.output_text},
                ],
                "repo_name": r.repo_name,
                "from_version": r.from_version,
                "to_version": r.to_version,
            });
            serde_json::to_writer(&mut *w, &chat).map_err(|e| io("chat.jsonl.gz", e.into()))?;
            w.write_all(b"\n").map_err(|e| io("chat.jsonl.gz", e))?;
        }
        if self.parquet.is_some() {
            self.pending_bytes += r.input_text.len() + r.output_text.len();
            self.pending.push(r.clone());
            if self.pending.len() >= ROWS_PER_GROUP || self.pending_bytes >= BYTES_PER_GROUP {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), EvolveError> {
        let path = self.staging.join("pairs.parquet");
        if let (Some(w), false) = (&mut self.parquet, self.pending.is_empty()) {
            let b = batch(&self.pending)
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
            w.write(&b)
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
            w.flush()
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Closes every file, writes the card and the manifest, and renames the folder into
    /// place.
    pub fn finish(mut self, counts: &EvolveCounts) -> Result<PathBuf, EvolveError> {
        self.flush()?;
        for (w, name) in [
            (self.jsonl.take(), "pairs.jsonl.gz"),
            (self.chat.take(), "chat.jsonl.gz"),
        ] {
            if let Some(w) = w {
                let path = self.staging.join(name);
                let mut inner = w.finish().map_err(|e| EvolveError::io(&path, e))?;
                inner.flush().map_err(|e| EvolveError::io(&path, e))?;
                inner
                    .get_ref()
                    .sync_all()
                    .map_err(|e| EvolveError::io(&path, e))?;
            }
        }
        if let Some(w) = self.parquet.take() {
            let path = self.staging.join("pairs.parquet");
            w.close()
                .map_err(|e| EvolveError::io(&path, std::io::Error::other(e)))?;
        }
        let card = self.staging.join("README.md");
        std::fs::write(&card, self.card(counts)).map_err(|e| EvolveError::io(&card, e))?;
        let mut files = serde_json::Map::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.staging)
            .map_err(|e| EvolveError::io(&self.staging, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let (size, hash) = hash_file(&p).map_err(|e| EvolveError::io(&p, e))?;
            files.insert(
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                serde_json::json!({"size": size, "xxh3": format!("{hash:032x}")}),
            );
        }
        let manifest = serde_json::json!({"kind": KIND, "counts": counts, "files": files});
        let path = self.staging.join(MANIFEST);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
        .map_err(|e| EvolveError::io(&path, e))?;
        sync_dir(&self.staging).map_err(|e| EvolveError::io(&self.staging, e))?;
        // The old output goes aside first and is removed only once the new one is in place:
        // at every moment one complete output exists. It is checked again (a run may last
        // hours).
        let aside = self.staging.with_extension("old");
        if self.out.exists() {
            if !is_ours(&self.out) {
                return Err(EvolveError::Foreign(self.out.clone()));
            }
            std::fs::rename(&self.out, &aside).map_err(|e| EvolveError::io(&self.out, e))?;
        }
        std::fs::rename(&self.staging, &self.out).map_err(|e| EvolveError::io(&self.out, e))?;
        self.done = true;
        if let Some(parent) = self.out.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| EvolveError::io(parent, e))?;
        }
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| EvolveError::io(&aside, e))?;
        }
        Ok(self.out.clone())
    }

    fn card(&self, c: &EvolveCounts) -> String {
        let mut s = String::from(
            "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: pairs.parquet\n---\n\n",
        );
        s.push_str("# Release-to-release pairs, rebuilt from the Software Heritage archive\n\n");
        s.push_str(
            "Written by `unearth evolve`. One record per pair of consecutive releases: \
             `input_text` is the codebase at `from_version`, `output_text` the diff to \
             `to_version` (`git apply` accepts it; files that are binary, over a size cap or \
             unavailable are listed above the first `diff --git`, not diffed).\n\n",
        );
        s.push_str(&format!(
            "| repositories | found with pairs | pairs | directories listed | directories diffed | skipped by identity | files inlined | files listed | text bytes |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n\n",
            c.repos, c.repos_found, c.pairs, c.codebase_dirs_decoded, c.diff_dirs_decoded,
            c.diff_dirs_skipped, c.files_inlined, c.files_listed, c.text_bytes
        ));
        if !self.per_repo.is_empty() {
            s.push_str("| repository | pairs |\n|---|---:|\n");
            for (r, n) in &self.per_repo {
                s.push_str(&format!("| {r} | {n} |\n"));
            }
            s.push('\n');
        }
        if !self.notes.is_empty() {
            s.push_str("Repositories without a pair:\n\n");
            for (r, why) in &self.notes {
                s.push_str(&format!("- {r}: {why}\n"));
            }
        }
        s
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A run that failed leaves no staging folder behind (it is unearth's own).
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Size and XXH3-128 of the file at `path`, streamed.
fn hash_file(path: &Path) -> std::io::Result<(u64, u128)> {
    let mut f = std::io::BufReader::new(File::open(path)?);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            return Ok((size, h.digest128()));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
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
    std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(KIND))
}
