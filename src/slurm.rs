//! Running the pipeline on a Slurm cluster: one job per phase, a job array per sharded phase
//! followed by its merge job, chained with `--dependency=afterok`.
//!
//! `unearth slurm submit --config FILE` renders `slurm/job.sbatch` (the template shipped with
//! unearth, or `[slurm] template` from the config) once per job into `WORKDIR/slurm/`, submits
//! them in order with `sbatch --parsable`, and records the job ids in
//! `WORKDIR/slurm/jobs.json` for `unearth status`. Jobs are `--requeue`able: every phase
//! resumes from its checkpoints. Values from the configuration reach the scripts single-quoted
//! ([`quote`]), so nothing in them runs as shell. A resubmission skips nothing by itself:
//! each job finds its checkpoint current and exits at once, and failed shards run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::{Flow, Phase};

/// Errors of Slurm submission.
#[derive(Debug, thiserror::Error)]
#[error("slurm: {0}")]
pub struct SlurmError(pub String);

/// The template shipped with unearth (a copy of `slurm/job.sbatch`).
pub const TEMPLATE: &str = include_str!("../slurm/job.sbatch");

/// Quotes `s` for a POSIX shell: single quotes, with each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One job to submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Name, e.g. `scan`, `scan-merge`.
    pub name: String,
    /// Whose resources it gets: a phase's name, or `evolve`.
    pub resources: String,
    /// Array size for a sharded phase's shard jobs.
    pub array: Option<usize>,
    /// The unearth arguments (after the binary).
    pub args: Vec<String>,
}

/// The jobs of a whole run, in dependency order: one per phase, or for a sharded phase an
/// array of its shards and a merge job.
pub fn plan_jobs(config: &Config) -> Vec<Job> {
    let phases = config.phases();
    plan_flow(config, Flow::Run, &phases, |phase| {
        vec![phase.name().to_string()]
    })
}

/// The jobs of `unearth hydrate`: its phases as a run's are planned (same job names, so that
/// `unearth status` follows them), each running `unearth hydrate --phase P`.
pub fn plan_hydrate_jobs(config: &Config) -> Vec<Job> {
    plan_flow(config, Flow::Hydrate, Flow::Hydrate.phases(), |phase| {
        vec!["hydrate".into(), "--phase".into(), phase.name().into()]
    })
}

/// One job per phase of `phases`, or for a phase sharded in `flow` an array of its shards
/// and a merge job; `command` gives the arguments that run a phase.
fn plan_flow(
    config: &Config,
    flow: Flow,
    phases: &[Phase],
    command: impl Fn(Phase) -> Vec<String>,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &phase in phases {
        let name = phase.name().to_string();
        let with = |extra: &[String]| -> Vec<String> {
            command(phase)
                .into_iter()
                .chain(extra.iter().cloned())
                .collect()
        };
        let shards = phase
            .sharding_in(flow)
            .and_then(|_| config.shards.of(phase));
        match shards {
            Some(n) => {
                jobs.push(Job {
                    name: name.clone(),
                    resources: name.clone(),
                    array: Some(n),
                    args: with(&["--shard".into(), format!("${{SLURM_ARRAY_TASK_ID}}/{n}")]),
                });
                jobs.push(Job {
                    name: format!("{name}-merge"),
                    resources: name.clone(),
                    array: None,
                    args: with(&["--merge".into()]),
                });
            }
            None => jobs.push(Job {
                name: name.clone(),
                resources: name.clone(),
                array: None,
                args: with(&[]),
            }),
        }
    }
    jobs
}

/// The jobs of `unearth evolve`: one job, or with `[evolve] slices = N` above 1 an array
/// of N slices and a merge job. `repos` is the `--repos` file, passed on as given.
pub fn plan_evolve_jobs(config: &Config, repos: Option<&Path>) -> Vec<Job> {
    let mut tail: Vec<String> = Vec::new();
    if let Some(r) = repos {
        tail.extend(["--repos".into(), r.display().to_string()]);
    }
    let job = |name: &str, array, extra: &[String]| Job {
        name: name.into(),
        resources: "evolve".into(),
        array,
        args: std::iter::once("evolve".to_string())
            .chain(extra.iter().cloned())
            .chain(tail.iter().cloned())
            .collect(),
    };
    match config.evolve.slices {
        n if n > 1 => vec![
            job(
                "evolve",
                Some(n),
                &["--slice".into(), format!("${{SLURM_ARRAY_TASK_ID}}/{n}")],
            ),
            job("evolve-merge", None, &["--merge".into()]),
        ],
        _ => vec![job("evolve", None, &[])],
    }
}

/// Renders the sbatch script of `job`.
pub fn render(
    template: &str,
    config: &Config,
    config_path: &Path,
    binary: &Path,
    job: &Job,
) -> String {
    let r = config.slurm.resources_of(&job.resources);
    let mut directives = vec![
        format!(
            "#SBATCH --job-name={}",
            quote(&format!("unearth-{}", job.name))
        ),
        "#SBATCH --requeue".to_string(),
        format!(
            "#SBATCH --output={}",
            quote(
                &config
                    .workdir
                    .join("slurm")
                    .join(format!("{}-%A_%a.log", job.name))
                    .display()
                    .to_string()
            )
        ),
    ];
    if let Some(n) = job.array {
        directives.push(format!("#SBATCH --array=0-{}", n - 1));
    }
    if let Some(v) = &r.partition {
        directives.push(format!("#SBATCH --partition={}", quote(v)));
    }
    if let Some(v) = &r.account {
        directives.push(format!("#SBATCH --account={}", quote(v)));
    }
    if let Some(v) = r.cpus {
        directives.push(format!("#SBATCH --cpus-per-task={v}"));
    }
    if let Some(v) = &r.mem {
        directives.push(format!("#SBATCH --mem={}", quote(v)));
    }
    if let Some(v) = &r.time {
        directives.push(format!("#SBATCH --time={}", quote(v)));
    }
    // Arguments are quoted, except the array index, which the shell must expand.
    let args: Vec<String> = job
        .args
        .iter()
        .map(|a| {
            if a.contains("${SLURM_ARRAY_TASK_ID}") {
                format!("\"{a}\"")
            } else {
                quote(a)
            }
        })
        .collect();
    let command = format!(
        "{} {} --config {}",
        quote(&binary.display().to_string()),
        args.join(" "),
        quote(&config_path.display().to_string())
    );
    template
        .replace("{{directives}}", &directives.join("\n"))
        .replace("{{command}}", &command)
}

/// What a submission did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Submission {
    /// Job name -> Slurm job id.
    pub jobs: BTreeMap<String, String>,
    /// The sbatch command lines, in order.
    pub commands: Vec<String>,
    /// The scripts written.
    pub scripts: Vec<PathBuf>,
}

/// Writes the scripts of the pipeline's jobs and (unless `dry_run`) submits them;
/// `jobs.json` records the ids.
pub fn submit(
    config: &Config,
    config_path: &Path,
    dry_run: bool,
) -> Result<Submission, SlurmError> {
    submit_jobs(
        config,
        config_path,
        &plan_jobs(config),
        "jobs.json",
        dry_run,
    )
}

/// Writes the scripts of `jobs` and (unless `dry_run`) submits them in order, each after the
/// one before; `WORKDIR/slurm/<record>` records the ids.
pub fn submit_jobs(
    config: &Config,
    config_path: &Path,
    jobs: &[Job],
    record: &str,
    dry_run: bool,
) -> Result<Submission, SlurmError> {
    let e = |x: &dyn std::fmt::Display| SlurmError(x.to_string());
    let dir = config.workdir.join("slurm");
    let template = match &config.slurm.template {
        Some(p) => std::fs::read_to_string(p).map_err(|x| e(&format!("{}: {x}", p.display())))?,
        None => TEMPLATE.to_string(),
    };
    let binary = match &config.slurm.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|x| e(&x))?,
    };
    let config_path = std::fs::canonicalize(config_path).map_err(|x| e(&x))?;
    let dir = if dry_run {
        // Nothing is written for a dry run but the scripts, into a scratch folder.
        std::env::temp_dir().join(format!("unearth-slurm-dry-run-{}", std::process::id()))
    } else {
        dir
    };
    std::fs::create_dir_all(&dir).map_err(|x| e(&x))?;
    let mut sub = Submission::default();
    let mut previous: Option<String> = None;
    for job in jobs {
        let script = dir.join(format!("{}.sbatch", job.name));
        std::fs::write(
            &script,
            render(&template, config, &config_path, &binary, job),
        )
        .map_err(|x| e(&x))?;
        let mut cmd = vec!["sbatch".to_string(), "--parsable".into()];
        if let Some(p) = &previous {
            cmd.push(format!("--dependency=afterok:{p}"));
            cmd.push("--kill-on-invalid-dep=no".into());
        }
        cmd.push(script.display().to_string());
        sub.commands
            .push(cmd.iter().map(|c| quote(c)).collect::<Vec<_>>().join(" "));
        sub.scripts.push(script.clone());
        let id = if dry_run {
            format!("<{}>", job.name)
        } else {
            let out = std::process::Command::new(&cmd[0])
                .args(&cmd[1..])
                .output()
                .map_err(|x| e(&format!("cannot run sbatch: {x}")))?;
            if !out.status.success() {
                return Err(SlurmError(format!(
                    "sbatch {} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .split(';')
                .next()
                .unwrap_or("")
                .to_string()
        };
        sub.jobs.insert(job.name.clone(), id.clone());
        previous = Some(id);
    }
    if !dry_run {
        let path = dir.join(record);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&sub).unwrap_or_default(),
        )
        .map_err(|x| e(&x))?;
    }
    Ok(sub)
}

/// States of this run's Slurm jobs, by job id (array tasks as `ID_I`), from `squeue`.
pub fn job_states(workdir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(workdir.join("slurm/jobs.json")) else {
        return out;
    };
    let Ok(sub) = serde_json::from_str::<Submission>(&text) else {
        return out;
    };
    let ids: Vec<&str> = sub.jobs.values().map(String::as_str).collect();
    if let Ok(o) = std::process::Command::new("squeue")
        .args(["--states=all", "-h", "-o", "%i %T", "-j", &ids.join(",")])
        .output()
    {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some((id, state)) = line.trim().split_once(' ') {
                out.insert(id.to_string(), state.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hydrate_jobs_shard_the_fetch_and_the_dataset_only() {
        let mut config: Config = toml::from_str("workdir = \"w\"").unwrap();
        config.shards.content = 3;
        config.shards.fetch = 4;
        let jobs = plan_hydrate_jobs(&config);
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "content",
                "fetch",
                "fetch-merge",
                "export",
                "dataset",
                "dataset-merge"
            ]
        );
        assert_eq!(jobs[1].array, Some(4));
        assert_eq!(
            jobs[1].args,
            [
                "hydrate",
                "--phase",
                "fetch",
                "--shard",
                "${SLURM_ARRAY_TASK_ID}/4"
            ]
        );
        assert_eq!(jobs[0].args, ["hydrate", "--phase", "content"]);
        assert_eq!(jobs[2].args, ["hydrate", "--phase", "fetch", "--merge"]);
    }

    #[test]
    fn quoting_keeps_shell_out() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("x'; rm -rf /; '"), r"'x'\''; rm -rf /; '\'''");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", quote("$(echo pwned)'`id`"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "$(echo pwned)'`id`");
    }
}
