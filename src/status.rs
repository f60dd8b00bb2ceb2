//! `unearth status WORKDIR`: what is done, running, failed or missing, per phase and shard.
//!
//! Read from the work directory alone (phase and shard manifests, staging folders of live
//! processes) plus, when the run was submitted through Slurm, the states `squeue` reports for
//! the recorded jobs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{Flow, Phase, Shard};
use crate::pipeline::checkpoint::{read_manifest, PhaseManifest};
use crate::pipeline::shard_name;

/// State of one unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `phase` or `phase shard I/N`.
    pub what: String,
    /// `done`, `running`, `failed`, `missing`, `pending`...
    pub state: String,
    /// Counts of the manifest, when done.
    pub counts: BTreeMap<String, u64>,
    /// Slurm job id, when submitted through Slurm.
    pub job: Option<String>,
}

fn manifest(dir: &Path) -> Option<PhaseManifest> {
    read_manifest(dir).ok().flatten()
}

/// Whether a staging folder of `name` belongs to a live process.
fn running(workdir: &Path, name: &str) -> bool {
    let prefix = format!(".{name}.tmp-");
    std::fs::read_dir(workdir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.strip_prefix(&prefix)
                        .and_then(|pid| pid.parse::<u32>().ok())
                })
                .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        })
        .unwrap_or(false)
}

/// The shard counts found in the work directory for `phase` (from shard folder names).
fn shard_counts(workdir: &Path, phase: Phase) -> Vec<usize> {
    let prefix = format!("{phase}-shard-");
    let mut counts: Vec<usize> = std::fs::read_dir(workdir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    let rest = n.strip_prefix(&prefix)?.to_string();
                    rest.split_once("-of-")?.1.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    counts.sort();
    counts.dedup();
    counts
}

/// The status of every phase and shard of the run in `workdir`.
pub fn status(workdir: &Path) -> Vec<Line> {
    let jobs: BTreeMap<String, String> = std::fs::read_to_string(workdir.join("slurm/jobs.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::slurm::Submission>(&t).ok())
        .map(|s| s.jobs)
        .unwrap_or_default();
    let states = crate::slurm::job_states(workdir);
    let slurm_state = |id: &str| states.get(id).cloned();
    let mut lines = Vec::new();
    let unit = |name: &str, what: String, job: Option<String>| {
        let dir = workdir.join(name);
        let (state, counts) = match manifest(&dir) {
            Some(m) => ("done".to_string(), m.counts),
            None if running(workdir, name) => ("running".to_string(), BTreeMap::new()),
            None => {
                let s = job
                    .as_deref()
                    .and_then(slurm_state)
                    .map(|s| s.to_lowercase());
                (s.unwrap_or_else(|| "missing".into()), BTreeMap::new())
            }
        };
        Line {
            what,
            state,
            counts,
            job,
        }
    };
    // A hydration's work directory has its four phases only.
    let flow = crate::pipeline::Workdir::recorded(workdir).map_or(Flow::Run, |g| g.flow());
    for &phase in flow.phases() {
        let mut ns = shard_counts(workdir, phase);
        if jobs.contains_key(phase.name()) {
            // The array size submitted, even when no shard has written anything yet.
            if let Ok(text) = std::fs::read_to_string(workdir.join(format!("slurm/{phase}.sbatch")))
            {
                if let Some(n) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("#SBATCH --array=0-"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                {
                    ns.push(n + 1);
                }
            }
        }
        ns.sort();
        ns.dedup();
        for n in ns {
            for index in 0..n {
                let shard = Shard { index, count: n };
                let job = jobs.get(phase.name()).map(|j| format!("{j}_{index}"));
                lines.push(unit(
                    &shard_name(phase, shard),
                    format!("{phase} shard {shard}"),
                    job,
                ));
            }
        }
        let job = jobs
            .get(&format!("{phase}-merge"))
            .or_else(|| jobs.get(phase.name()))
            .cloned();
        lines.push(unit(phase.name(), phase.to_string(), job));
    }
    lines
}
