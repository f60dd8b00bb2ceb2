//! `unearth bench`: every phase on an archive, each in its own process, measured; the
//! baselines it is compared with, measured in the same run; and, across archives of
//! several sizes, a cost model per phase with its projection to the full archive.
//!
//! Per phase: wall and CPU time, peak resident and peak anonymous memory, bytes read from
//! storage. With a cold cache (the default), the page cache is emptied of every input
//! (graph, ORC tables, metadata, work directory, blob store) before each phase and each
//! baseline ([`cache`]), so that phases read from storage as they would on a large archive.
//!
//! Baselines: a raw sequential read of the files of each sequential pass and of the whole
//! graph folder (the storage's rate), and the per-row random-access baseline: a sample of
//! rows resolved one hop at a time through swh-graph, as `verify` walks them
//! ([`crate::verify::resolve_by_random_access`]).
//!
//! The phases run into a fresh folder `<workdir>.bench/` (its `bench.toml` marks it as
//! unearth's); figures are saved there as `figures.json` and can be fitted again later with
//! `--figures`. With several archives, [`model`] fits each phase's cost against its driver
//! and projects it; [`plot`] draws cost against size.

pub mod cache;
pub mod child;
pub mod dataset;
pub mod evolve;
pub mod figures;
pub mod hydrate;
pub mod joins;
pub mod labels;
pub mod model;
pub mod plot;
pub mod report;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::graph::suffixed;
use crate::model::{Phase, RowStatus};
use crate::pipeline::checkpoint::read_manifest;

pub use figures::{ArchiveFigures, Baseline, PhaseFigures, RowBaseline};

/// Errors of a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A phase's process failed.
    #[error("`unearth {what}` failed (wait status {status}); its log: {log}")]
    Child {
        /// The command.
        what: String,
        /// Its wait status.
        status: i32,
        /// Its log file.
        log: PathBuf,
    },
    /// The benchmark folder is not unearth's.
    #[error("{0} exists and is not a benchmark folder of unearth's (no bench.toml); not replaced")]
    Foreign(PathBuf),
    /// Saved figures could not be read or written.
    #[error("figures {path}: {reason}")]
    Figures {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A phase's output could not be read.
    #[error("bench: {0}")]
    Output(String),
    /// A picture could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

impl BenchError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How to benchmark.
#[derive(Debug, Clone)]
pub struct Options {
    /// Empty the page cache of the inputs before each phase and baseline.
    pub cold: bool,
    /// Rows resolved by the per-row random-access baseline (0: none).
    pub random_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cold: true,
            random_rows: 1000,
        }
    }
}

const BENCH_CONFIG: &str = "bench.toml";
/// The figures' file in the benchmark folder.
pub const FIGURES: &str = "figures.json";

/// The fresh folder a benchmark of `config` runs in: `<workdir>.bench/`. An earlier
/// benchmark's folder is replaced; any other folder there is refused.
pub fn bench_dir(config: &Config) -> Result<PathBuf, BenchError> {
    // Beside the work directory (whatever its spelling: `work/` names the same folder).
    let work = &config.workdir;
    let mut name = work
        .file_name()
        .map_or_else(|| "work".into(), |n| n.to_os_string());
    name.push(".bench");
    let dir = work
        .parent()
        .map_or_else(|| PathBuf::from(&name), |p| p.join(&name));
    if dir.exists() {
        if !dir.join(BENCH_CONFIG).is_file() {
            return Err(BenchError::Foreign(dir));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    Ok(dir)
}

/// Saves `cfg` as TOML at `path` (its paths are absolute, so the copy reads the same files);
/// returns the path as the `--config` argument of a phase's process.
fn save_config(cfg: &Config, path: &Path) -> Result<String, BenchError> {
    let text = toml::to_string(cfg).map_err(|e| BenchError::Output(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| BenchError::io(path, e))?;
    Ok(path.to_string_lossy().into_owned())
}

/// The counts `phase` recorded in its manifest in `cfg`'s work directory.
fn phase_counts(cfg: &Config, phase: Phase) -> Result<crate::model::CountMap, BenchError> {
    let pdir = cfg.workdir.join(phase.name());
    let manifest = read_manifest(&pdir)
        .map_err(|e| BenchError::Output(e.to_string()))?
        .ok_or_else(|| BenchError::Output(format!("{} has no manifest", pdir.display())))?;
    Ok(manifest.counts)
}

/// Runs `work` on a rayon pool of 1 thread and of one per core (once when there is one core),
/// timing each: `(threads, seconds, result)`.
fn on_one_and_all_cores<T>(
    work: impl Fn() -> Result<T, BenchError> + Sync,
) -> Result<Vec<(usize, f64, T)>, BenchError>
where
    T: Send,
{
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut out = Vec::new();
    for threads in if cores == 1 { vec![1] } else { vec![1, cores] } {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| BenchError::Output(e.to_string()))?;
        let t = Instant::now();
        let r = pool.install(&work)?;
        out.push((threads, t.elapsed().as_secs_f64(), r));
    }
    Ok(out)
}

/// Reads `files` once (after emptying the cache of them when `cold`, else after a first
/// read that warms it) and times it.
pub fn raw_read(what: &str, files: &[PathBuf], cold: bool) -> Result<Baseline, BenchError> {
    let read = || -> Result<(u64, f64), BenchError> {
        let mut buf = vec![0u8; 8 << 20];
        let start = Instant::now();
        let mut total = 0u64;
        for f in files {
            let mut file = std::fs::File::open(f).map_err(|e| BenchError::io(f, e))?;
            loop {
                let n = file.read(&mut buf).map_err(|e| BenchError::io(f, e))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        Ok((total, start.elapsed().as_secs_f64()))
    };
    if cold {
        cache::drop_all(files).map_err(|e| BenchError::io(Path::new(what), e))?;
    } else {
        read()?;
    }
    let (bytes, seconds) = read()?;
    Ok(Baseline {
        what: what.to_string(),
        bytes,
        seconds,
    })
}

/// Everything a phase may read: the graph folder, ORC tables, metadata, the work directory
/// and a local blob store.
fn inputs(cfg: &Config) -> Vec<PathBuf> {
    let mut roots = vec![cfg.workdir.clone(), cfg.metadata.clone()];
    // The metadata may be a glob: its files, as the plan lists them.
    if let Ok(files) = crate::phases::plan::input_files(&cfg.metadata) {
        roots.extend(files);
    }
    if let Some(dir) = cfg.graph.parent() {
        roots.push(dir.to_path_buf());
    }
    roots.extend(cfg.orc.clone());
    roots.extend(cfg.digestmap.clone());
    if let Some(local) = cfg.fetch.store.strip_prefix("file://") {
        roots.push(PathBuf::from(local));
    }
    roots
}

/// The short name of a benchmark: the folder of its configuration file.
pub fn name_of(config_path: &Path) -> String {
    std::path::absolute(config_path)
        .ok()
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or_else(|| "archive".into(), |n| n.to_string_lossy().into_owned())
}

fn baselines(cfg: &Config, cold: bool) -> Result<Vec<Baseline>, BenchError> {
    let g = &cfg.graph;
    let mut out = vec![
        raw_read(
            "node2type + node2swhid",
            &[
                suffixed(g, ".node2type.bin"),
                suffixed(g, ".node2swhid.bin"),
            ],
            cold,
        )?,
        raw_read(
            "graph-labelled.labels",
            &[suffixed(g, "-labelled.labels")],
            cold,
        )?,
    ];
    if let Some(orc) = &cfg.orc {
        let files: Vec<PathBuf> = crate::phases::content::all_files(orc)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        out.push(raw_read("ORC content + skipped_content", &files, cold)?);
    }
    if let Some(dir) = g.parent() {
        let files = cache::files_under(&[dir.to_path_buf()]);
        out.push(raw_read(figures::DISK, &files, cold)?);
    }
    if evolve::wanted(cfg) {
        out.extend(evolve::store_baseline(cfg, cold)?);
    }
    Ok(out)
}

/// The pass of a sequential phase: its own timing, the bytes it reads, its baseline.
fn pass(
    phase: Phase,
    counts: &crate::model::CountMap,
    base: &[Baseline],
) -> (Option<f64>, Option<u64>, Option<String>) {
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let named = |what: &str| base.iter().find(|b| b.what == what);
    let secs = Some(get("pass_micros") as f64 / 1e6);
    match phase {
        Phase::Scan => named("node2type + node2swhid").map_or((None, None, None), |b| {
            (secs, Some(b.bytes), Some(b.what.clone()))
        }),
        Phase::Labels => (
            secs,
            Some(get("bytes_read")),
            Some("graph-labelled.labels".into()),
        ),
        Phase::Content => named("ORC content + skipped_content").map_or((None, None, None), |b| {
            (secs, Some(b.bytes), Some(b.what.clone()))
        }),
        _ => (None, None, None),
    }
}

/// The per-row baseline: `rows` rows of the walk's output resolved by random access.
fn random_access(cfg: &Config, rows: usize) -> Result<RowBaseline, BenchError> {
    let dir = cfg.workdir.join(Phase::Walk.name());
    let out = |e: &dyn std::fmt::Display| BenchError::Output(format!("{}: {e}", dir.display()));
    let total = crate::verify::count_rows(&dir).map_err(|e| out(&e))?;
    let sample = crate::verify::sample_rows(&dir, total, rows, 1).map_err(|e| out(&e))?;
    let start = Instant::now();
    let graph = crate::graph::open_labelled(&cfg.graph).map_err(|e| out(&e))?;
    let load_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut agreed = 0;
    for r in &sample {
        let (status, sha) = crate::verify::resolve_by_random_access(
            &graph,
            &cfg.options.url_templates,
            r.repo.as_deref(),
            r.commit.as_deref(),
            r.path.as_deref(),
        );
        // A hop-by-hop walk cannot tell a prefix absent from the archive from one outside
        // the origin's history (that takes the revision scan), as in `verify`.
        let same_status = Some(status) == r.status
            || (status == RowStatus::CommitNotInOrigin
                && r.status == Some(RowStatus::CommitNotFound));
        agreed += (same_status && sha == r.sha1_git) as u64;
    }
    Ok(RowBaseline {
        rows: sample.len() as u64,
        load_seconds,
        seconds: start.elapsed().as_secs_f64(),
        agreed,
    })
}

/// Benchmarks every phase of `config` in a fresh work directory, with the baselines;
/// saves the figures in the benchmark folder.
pub fn bench(config: &Config, name: &str, opts: &Options) -> Result<ArchiveFigures, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io(Path::new("unearth"), e))?;
    let mut cfg = config.clone();
    let dir = bench_dir(config)?;
    cfg.workdir = dir.join("work");
    // evolve writes into the benchmark's work directory, never over the user's output.
    cfg.evolve.out = None;
    cfg.dataset.out = None;
    // Paths in a loaded configuration are absolute, so the copy reads the same files.
    let cfg_arg = save_config(&cfg, &dir.join(BENCH_CONFIG))?;
    let roots = inputs(&cfg);
    let drop = || -> Result<(), BenchError> {
        if opts.cold {
            cache::drop_all(&roots).map_err(|e| BenchError::io(&cfg.workdir, e))?;
        }
        Ok(())
    };

    let base = baselines(&cfg, opts.cold)?;
    let mut phases = Vec::new();
    for phase in cfg.phases() {
        drop()?;
        let log = child::log_path(&dir, phase.name());
        let usage = child::run(&exe, &[phase.name(), "--config", &cfg_arg], &log)?;
        let counts = phase_counts(&cfg, phase)?;
        let (pass_seconds, pass_bytes, pass_baseline) = pass(phase, &counts, &base);
        phases.push(PhaseFigures {
            phase: phase.name().to_string(),
            usage,
            counts,
            pass_seconds,
            pass_bytes,
            pass_baseline,
        });
    }
    // Before the other label strategy reruns the phases upstream of the join with another
    // configuration (after it, the join's own would be stale).
    let content_ran = phases.iter().any(|p| p.phase == Phase::Content.name());
    let (joins, lookups) = if content_ran {
        (
            joins::sources(&exe, &dir, &cfg, &drop)?,
            joins::lookups(&cfg)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let labels_ran = phases.iter().any(|p| p.phase == Phase::Labels.name());
    let strategies = if labels_ran {
        vec![labels::other_strategy(&exe, &dir, &cfg, &drop)?]
    } else {
        Vec::new()
    };
    let decode = if labels_ran {
        labels::full_decode(&cfg, &dir)?
    } else {
        Vec::new()
    };
    let mut base = base;
    let dataset = if phases.iter().any(|p| p.phase == Phase::Dataset.name()) {
        drop()?;
        let (figures, parts) = dataset::measure(&cfg, opts.cold)?;
        base.push(parts);
        Some(figures)
    } else {
        None
    };
    let evolve = if evolve::wanted(&cfg) {
        drop()?;
        Some(evolve::run(&exe, &dir, &cfg, &cfg_arg)?)
    } else {
        None
    };
    let random = if opts.random_rows > 0 {
        drop()?;
        Some(random_access(&cfg, opts.random_rows)?)
    } else {
        None
    };
    let figures = ArchiveFigures {
        name: name.to_string(),
        graph: cfg.graph.clone(),
        nodes: crate::graph::num_nodes(&cfg.graph).map_err(|e| BenchError::Output(e.to_string()))?
            as u64,
        arcs: crate::graph::num_arcs(&cfg.graph).map_err(|e| BenchError::Output(e.to_string()))?
            as u64,
        cold: opts.cold,
        machine: figures::Machine::here(),
        baselines: base,
        phases,
        random_access: random,
        sort_memory_mb: cfg.options.sort_memory_mb as u64,
        strategy: cfg.options.strategy.name().to_string(),
        strategies,
        decode,
        joins,
        lookups,
        evolve,
        dataset,
    };
    figures.save(&dir.join(FIGURES))?;
    Ok(figures)
}

/// The report of `archives`: each one's tables and, with two sizes or more, the model, its
/// projection, and pictures written into `out` (when given).
pub fn report(archives: &[ArchiveFigures], out: Option<&Path>) -> Result<String, BenchError> {
    let mut sorted: Vec<&ArchiveFigures> = archives.iter().collect();
    sorted.sort_by_key(|a| a.nodes);
    let mut s = String::new();
    for a in &sorted {
        s.push_str(&report::archive(a));
        s.push('\n');
    }
    let sizes: std::collections::BTreeSet<u64> = archives.iter().map(|a| a.nodes).collect();
    if sizes.len() >= 2 {
        if let Some(models) = model::fit(archives) {
            s.push_str("### Cost model and projection\n\n");
            s.push_str(&report::model(archives, &models));
        }
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        for m in &plot::MEASURES {
            plot::draw(archives, m, dir)?;
        }
        plot::strategies(archives, dir)?;
        let path = dir.join("report.md");
        crate::artifacts::write_atomically(&path, s.as_bytes())
            .map_err(|e| BenchError::io(&path, e))?;
    }
    Ok(s)
}
