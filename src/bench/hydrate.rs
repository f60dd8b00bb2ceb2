//! `unearth hydrate` measured (a configuration without `graph`): ids per second and bytes
//! per second through the configured store, against the loop The Stack v2 suggests, one
//! request at a time, through the same store in the same run.
//!
//! With the loopback S3 server adding 150 ms to every request (`unearth-loopback
//! --latency-ms 150`), the one-at-a-time loop is bound by the latency (about 6.7 requests per
//! second); hydration keeps many requests in flight ([`crate::store::limiter`]).

use std::path::Path;
use std::time::Instant;

use super::child::{self, Usage};
use super::report::duration;
use super::BenchError;
use crate::config::Config;
use crate::hydrate::{HydrateCounts, COUNTS};
use crate::store::source::{Got, Source};
use crate::store::verify::UNKNOWN_LENGTH_CAP;

/// Requests of the one-at-a-time baseline.
pub const SERIAL_REQUESTS: usize = 40;

/// The one-at-a-time loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Serial {
    /// Requests made.
    pub requests: u64,
    /// Bodies received.
    pub bodies: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
}

impl Serial {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// One hydration, measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HydrateFigures {
    /// The configuration's name.
    pub name: String,
    /// The store.
    pub store: String,
    /// What its process used.
    pub usage: Usage,
    /// Its counts.
    pub counts: HydrateCounts,
    /// The one-at-a-time loop through the same store.
    pub serial: Serial,
}

impl HydrateFigures {
    /// Blobs fetched per second of the whole run (ids, fetch, export and dataset).
    pub fn blob_rate(&self) -> f64 {
        self.counts.fetch.fetched as f64 / self.usage.wall.max(1e-9)
    }

    /// Input rows per second of the whole run.
    pub fn row_rate(&self) -> f64 {
        self.counts.rows as f64 / self.usage.wall.max(1e-9)
    }

    /// Saves the figures as JSON.
    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| BenchError::Figures {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        crate::artifacts::write_atomically(path, &text).map_err(|e| BenchError::io(path, e))
    }
}

/// The one-at-a-time loop over the first [`SERIAL_REQUESTS`] ids.
fn serial(cfg: &Config) -> Result<Serial, BenchError> {
    let ids = crate::hydrate::first_sha1s(cfg, SERIAL_REQUESTS)
        .map_err(|e| BenchError::Output(e.to_string()))?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| BenchError::io(Path::new("tokio runtime"), e))?;
    runtime.block_on(async {
        let source = Source::from_options(&cfg.fetch)
            .await
            .map_err(|e| BenchError::Output(e.to_string()))?;
        let start = Instant::now();
        let mut s = Serial {
            requests: 0,
            bodies: 0,
            bytes: 0,
            seconds: 0.0,
        };
        for id in &ids {
            s.requests += 1;
            if let Got::Body(b) = source.get(id, UNKNOWN_LENGTH_CAP).await {
                s.bodies += 1;
                s.bytes += b.len() as u64;
            }
        }
        s.seconds = start.elapsed().as_secs_f64();
        Ok(s)
    })
}

/// Runs `unearth hydrate` on `config` in its own process, into a fresh work directory in the
/// benchmark folder, after the one-at-a-time loop.
pub fn bench(config: &Config, name: &str) -> Result<HydrateFigures, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io(Path::new("unearth"), e))?;
    let mut cfg = config.clone();
    let dir = super::bench_dir(config)?;
    cfg.workdir = dir.join("work");
    // The benchmark's dataset stays in its own folder, never over the user's.
    cfg.dataset.out = None;
    let cfg_arg = super::save_config(&cfg, &dir.join(super::BENCH_CONFIG))?;
    let serial = serial(&cfg)?;
    let log = child::log_path(&dir, "hydrate");
    let usage = child::run(&exe, &["hydrate", "--config", &cfg_arg], &log)?;
    let path = cfg.workdir.join(COUNTS);
    let text = std::fs::read(&path).map_err(|e| BenchError::io(&path, e))?;
    let counts: HydrateCounts = serde_json::from_slice(&text).map_err(|e| BenchError::Figures {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let figures = HydrateFigures {
        name: name.to_string(),
        store: cfg.fetch.store.clone(),
        usage,
        counts,
        serial,
    };
    figures.save(&dir.join("hydrate-figures.json"))?;
    Ok(figures)
}

/// The report's table.
pub fn report(h: &HydrateFigures) -> String {
    let c = &h.counts;
    format!(
        "### hydrate {}: {}\n\n\
         | rows | distinct blobs | fetched | MB fetched | requests | peak in flight | wall | \
         CPU s | peak anon MB | rows/s | blobs/s | MB/s | one at a time: blobs/s | hydrate / one at a time |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.2} | {:.2} | {:.1}x |\n",
        h.name,
        h.store,
        c.rows,
        c.blobs,
        c.fetch.fetched,
        c.fetch.fetched_bytes as f64 / 1e6,
        c.fetch.requests,
        c.fetch.concurrency_peak,
        duration(h.usage.wall),
        h.usage.user + h.usage.system,
        h.usage.max_anon as f64 / 1e6,
        h.row_rate(),
        h.blob_rate(),
        c.fetch.fetched_bytes as f64 / 1e6 / h.usage.wall.max(1e-9),
        h.serial.rate(),
        h.blob_rate() / h.serial.rate().max(1e-9),
    )
}
