//! `unearth bench`: every phase on an archive, each in its own process, with wall time, peak
//! memory and, for the two sequential passes, throughput as a ratio to a plain sequential
//! read of the same files measured in the same run.
//!
//! The phases run into a fresh work directory (`<workdir>.bench`). The baseline reads are done
//! twice, the second timed, so that they and the phases both run on a warm page cache: the
//! ratio then measures decoding cost, not the disk. Wall times include process start and
//! graph loading.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::graph::suffixed;
use crate::model::{Counts, Phase};
use crate::phases::{
    content::ContentCounts, fetch::FetchCounts, labels::LabelCounts, scan::ScanCounts,
};
use crate::pipeline::checkpoint::{read_manifest, PhaseManifest};

/// Errors of a benchmark.
#[derive(Debug, thiserror::Error)]
#[error("bench: {0}")]
pub struct BenchError(pub String);

/// Figures of one phase.
#[derive(Debug, Clone)]
pub struct PhaseFigures {
    /// The phase.
    pub phase: Phase,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Peak resident memory of the process, bytes (memory-mapped file pages included).
    pub max_rss: u64,
    /// Peak anonymous resident memory (heap and stacks: what the phase allocates), sampled
    /// every 2 ms, bytes.
    pub max_anon: u64,
    /// Bytes read by `read` system calls (page-cache hits included; memory-mapped files not).
    pub read_syscall_bytes: u64,
    /// Blobs fetched and verified, and their bytes (fetch phase only).
    pub fetched: Option<(u64, u64)>,
    /// Bytes of graph files the phase is designed to read, when it is a sequential pass.
    pub pass_bytes: Option<u64>,
    /// Throughput of the whole phase (process start included) over the raw read.
    pub ratio_to_raw: Option<f64>,
    /// Seconds of the pass alone, as the phase measured it.
    pub pass_seconds: Option<f64>,
    /// Throughput of the pass alone over the raw read of the same files.
    pub pass_ratio_to_raw: Option<f64>,
}

/// A raw sequential read of files: bytes and seconds of the timed (second) read.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// What was read.
    pub what: &'static str,
    /// Bytes.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
}

impl Baseline {
    /// Bytes per second.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }
}

fn read_all(files: &[PathBuf]) -> Result<(u64, f64), BenchError> {
    let mut buf = vec![0u8; 8 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    for f in files {
        let mut file =
            std::fs::File::open(f).map_err(|e| BenchError(format!("{}: {e}", f.display())))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| BenchError(format!("{}: {e}", f.display())))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

/// Reads `files` twice and times the second read.
pub fn baseline(what: &'static str, files: &[PathBuf]) -> Result<Baseline, BenchError> {
    read_all(files)?;
    let (bytes, seconds) = read_all(files)?;
    Ok(Baseline {
        what,
        bytes,
        seconds,
    })
}

/// Runs `exe <phase> --config <config>` and measures it.
fn run_child(exe: &Path, phase: Phase, config: &Path) -> Result<(f64, u64, u64, u64), BenchError> {
    let log = config.with_file_name(format!("{phase}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| BenchError(e.to_string()))?;
    let start = Instant::now();
    let child = std::process::Command::new(exe)
        .arg(phase.name())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| BenchError(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child.id() as libc::pid_t;
    let io_path = format!("/proc/{pid}/io");
    let status_path = format!("/proc/{pid}/status");
    let mut last_rchar = 0u64;
    let mut max_anon = 0u64;
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Ok(text) = std::fs::read_to_string(&io_path) {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|v| v.trim().parse().ok())
            {
                last_rchar = v;
            }
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                max_anon = max_anon.max(kb * 1024);
            }
        }
        // SAFETY: pid is our child; status and usage are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            return Err(BenchError(format!(
                "wait4 on {phase}: {}",
                std::io::Error::last_os_error()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let seconds = start.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(BenchError(format!(
            "phase {phase} failed (status {status}); its log: {}",
            log.display()
        )));
    }
    Ok((seconds, usage.ru_maxrss as u64 * 1024, max_anon, last_rchar))
}

/// The fresh folder a benchmark of `config` runs in: `<workdir>.bench/`, holding its
/// configuration (`bench.toml`), the phases' logs and the work directory (`work/`). An earlier
/// benchmark's folder is replaced; any other folder there is refused.
fn bench_dir(config: &Config) -> Result<PathBuf, BenchError> {
    let mut dir = config.workdir.clone().into_os_string();
    dir.push(".bench");
    let dir = PathBuf::from(dir);
    let err = |e: std::io::Error| BenchError(format!("{}: {e}", dir.display()));
    if dir.exists() {
        if !dir.join(BENCH_CONFIG).is_file() {
            return Err(BenchError(format!(
                "{} exists and is not a benchmark folder of unearth's (no {BENCH_CONFIG}); not replaced",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(&dir).map_err(err)?;
    }
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

const BENCH_CONFIG: &str = "bench.toml";

/// Benchmarks every phase of `config` (in a fresh work directory) and the baselines.
pub fn bench(config: &Config) -> Result<(Vec<Baseline>, Vec<PhaseFigures>), BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError(e.to_string()))?;
    let mut cfg = config.clone();
    let dir = bench_dir(config)?;
    cfg.workdir = dir.join("work");
    // Paths in a loaded configuration are absolute, so the copy reads the same files.
    let cfg_path = dir.join(BENCH_CONFIG);
    let text = toml::to_string(&cfg).map_err(|e| BenchError(e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| BenchError(e.to_string()))?;

    let g = &cfg.graph;
    let scan_files = vec![
        suffixed(g, ".node2type.bin"),
        suffixed(g, ".node2swhid.bin"),
    ];
    let label_files = vec![suffixed(g, "-labelled.labels")];
    let mut baselines = vec![
        baseline("node2type + node2swhid", &scan_files)?,
        baseline("graph-labelled.labels", &label_files)?,
    ];
    if let Some(orc) = &cfg.orc {
        let files: Vec<PathBuf> = crate::phases::content::all_files(orc)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        baselines.push(baseline("ORC content + skipped_content", &files)?);
    }
    let mut figures = Vec::new();
    for phase in cfg.phases() {
        let (seconds, max_rss, max_anon, rchar) = run_child(&exe, phase, &cfg_path)?;
        let dir = cfg.workdir.join(phase.name());
        let manifest: PhaseManifest = read_manifest(&dir)
            .map_err(|e| BenchError(e.to_string()))?
            .ok_or_else(|| BenchError(format!("{} has no manifest", dir.display())))?;
        let micros = |us: u64| Some(us as f64 / 1e6);
        let (pass_bytes, base, pass_seconds) = match phase {
            Phase::Scan => {
                let c = ScanCounts::from_map(&manifest.counts);
                (
                    Some(baselines[0].bytes),
                    Some(&baselines[0]),
                    micros(c.pass_micros),
                )
            }
            Phase::Labels => {
                let c = LabelCounts::from_map(&manifest.counts);
                (
                    Some(c.bytes_read),
                    Some(&baselines[1]),
                    micros(c.pass_micros),
                )
            }
            Phase::Content if baselines.len() > 2 => {
                let c = ContentCounts::from_map(&manifest.counts);
                (
                    Some(baselines[2].bytes),
                    Some(&baselines[2]),
                    micros(c.pass_micros),
                )
            }
            _ => (None, None, None),
        };
        let ratio = pass_bytes
            .zip(base)
            .map(|(b, base)| (b as f64 / seconds.max(1e-9)) / base.rate());
        let pass_ratio = pass_bytes
            .zip(base)
            .zip(pass_seconds)
            .map(|((b, base), s)| (b as f64 / s.max(1e-9)) / base.rate());
        let fetched = (phase == Phase::Fetch).then(|| {
            let c = FetchCounts::from_map(&manifest.counts);
            (c.fetched, c.fetched_bytes)
        });
        figures.push(PhaseFigures {
            fetched,
            phase,
            seconds,
            max_rss,
            max_anon,
            read_syscall_bytes: rchar,
            pass_bytes,
            ratio_to_raw: ratio,
            pass_seconds,
            pass_ratio_to_raw: pass_ratio,
        });
    }
    Ok((baselines, figures))
}

/// Renders the figures as a Markdown report.
pub fn report(config: &Config, baselines: &[Baseline], figures: &[PhaseFigures]) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut s = format!("graph `{}`\n\n", config.graph.display());
    s.push_str("| baseline (raw sequential read, warm cache) | bytes | MB/s |\n|---|---:|---:|\n");
    for b in baselines {
        s.push_str(&format!(
            "| {} | {} | {:.0} |\n",
            b.what,
            b.bytes,
            b.rate() / 1e6
        ));
    }
    s.push_str(
        "\n| phase | wall s | peak RSS MB | peak anon MB | read() MB | pass bytes | pass s | \
         pass MB/s | pass / raw read | whole phase / raw read |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in figures {
        let opt = |v: Option<String>| v.unwrap_or_default();
        s.push_str(&format!(
            "| {} | {:.3} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            f.phase,
            f.seconds,
            mb(f.max_rss),
            mb(f.max_anon),
            mb(f.read_syscall_bytes),
            opt(f.pass_bytes.map(|b| b.to_string())),
            opt(f.pass_seconds.map(|x| format!("{x:.3}"))),
            opt(f
                .pass_bytes
                .zip(f.pass_seconds)
                .map(|(b, x)| format!("{:.0}", mb(b) / x.max(1e-9)))),
            opt(f.pass_ratio_to_raw.map(|r| format!("{r:.3}"))),
            opt(f.ratio_to_raw.map(|r| format!("{r:.3}"))),
        ));
    }
    for f in figures {
        if let Some((n, bytes)) = f.fetched {
            s.push_str(&format!(
                "\nfetch: {n} verified blobs, {:.1} MB, in {:.2} s: {:.0} blobs/s, {:.2} MB/s, \
                 peak RSS {:.1} MB ({})\n",
                mb(bytes),
                f.seconds,
                n as f64 / f.seconds.max(1e-9),
                mb(bytes) / f.seconds.max(1e-9),
                mb(f.max_rss),
                config.fetch.store
            ));
        }
    }
    s
}
