//! The pipeline through a real single-node Slurm (slurm-wlm, auth/none), started by the test:
//! job arrays for sharded phases, afterok chains, a failed array task that stops the chain,
//! `unearth status` naming it, and a resubmission that finishes without redoing done shards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use unearth::archive;

struct Cluster {
    conf: PathBuf,
    daemons: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_cluster() -> Cluster {
    for bin in ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{bin} is missing: scripts/setup.sh installs slurm-wlm"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("unearth-slurm-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let conf = d.join("slurm.conf");
    let p = |name: &str| d.join(name).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "ClusterName=unearth\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\n\
             SlurmctldPort={}\nSlurmdPort={}\n\
             StateSaveLocation={}\nSlurmdSpoolDir={}\nSlurmctldPidFile={}\nSlurmdPidFile={}\n\
             SlurmctldLogFile={}\nSlurmdLogFile={}\n\
             AuthType=auth/none\nCredType=cred/none\nProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             SchedulerParameters=sched_interval=1,bf_interval=1\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/filetxt\nJobCompLoc={}\nMailProg=/bin/true\nReturnToService=2\n\
             MinJobAge=300\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            p("state"),
            p("spool"),
            p("slurmctld.pid"),
            p("slurmd.pid"),
            p("slurmctld.log"),
            p("slurmd.log"),
            p("jobcomp.txt"),
        ),
    )
    .unwrap();
    let spawn = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .env("SLURM_CONF", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[0]))
    };
    let conf_s = conf.display().to_string();
    let daemons = vec![
        spawn(&["slurmctld", "-D", "-i", "-f", &conf_s]),
        spawn(&["slurmd", "-D", "-f", &conf_s, "-N", "localhost"]),
    ];
    let cluster = Cluster {
        conf,
        daemons,
        _dir: dir,
    };
    let start = Instant::now();
    loop {
        let o = Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", &cluster.conf)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&o.stdout).trim() == "idle" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the Slurm node did not become idle: {}",
            std::fs::read_to_string(cluster._dir.path().join("slurmctld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster
}

fn submit(cluster: &Cluster, cfg: &Path) -> Vec<String> {
    submit_with(cluster, cfg, &[])
}

fn submit_with(cluster: &Cluster, cfg: &Path, extra: &[&str]) -> Vec<String> {
    let o = unearth()
        .args(["slurm", "submit", "--config"])
        .arg(cfg)
        .args(extra)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.rsplit_once("job ").map(|(_, id)| id.to_string()))
        .collect()
}

/// Waits until every job is out of the queue's active states; returns `squeue` lines.
fn wait_jobs(cluster: &Cluster, ids: &[String], until: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let o = Command::new("squeue")
            .args(["--states=all", "-h", "-o", "%i %T %r", "-j", &ids.join(",")])
            .env("SLURM_CONF", &cluster.conf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        if until(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "jobs did not settle:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until no job is pending or running, and checks that all completed.
fn wait_completed(cluster: &Cluster, ids: &[String]) -> String {
    // Settled: no job waiting, running, or still being torn down (COMPLETING, CONFIGURING).
    let settled = wait_jobs(cluster, ids, |q| {
        !q.is_empty()
            && q.lines().all(|l| {
                !["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"]
                    .iter()
                    .any(|s| l.contains(s))
            })
    });
    assert!(
        settled.lines().all(|l| l.contains("COMPLETED")),
        "{settled}"
    );
    settled
}

fn demo_with_shards(tmp: &Path, name: &str) -> PathBuf {
    let out = tmp.join(name);
    archive::demo::build_demo(&out).unwrap();
    let cfg = out.join(archive::demo::CONFIG);
    let mut text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[options]\n", "[options]\nstrategy = \"single-pass\"\n");
    text.push_str("\n[shards]\nscan = 3\nlabels = 2\ncontent = 2\nfetch = 2\ndataset = 2\n\n[slurm.default]\ncpus = 1\nmem = \"200M\"\n");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn slurm_runs_the_pipeline_and_resumes_after_a_failed_shard() {
    let cluster = start_cluster();
    let tmp = tempdir();
    let t = tmp.path();

    // The reference: a plain local run.
    let local = demo_with_shards(t, "local");
    unearth_ok(&["run"], &local);
    let want = export_rows(&t.join("local/work"));

    // The whole pipeline through Slurm.
    let cfg = demo_with_shards(t, "cluster");
    let ids = submit(&cluster, &cfg);
    assert_eq!(
        ids.len(),
        16,
        "11 phases, 5 of them arrays with a merge job: {ids:?}"
    );
    let settled = wait_completed(&cluster, &ids);
    assert!(
        settled.contains("_2 COMPLETED"),
        "scan ran as a 3-task array: {settled}"
    );
    assert_eq!(export_rows(&t.join("cluster/work")), want);

    // `unearth evolve` as an array of slices and a merge job gives the local run's pairs.
    let repos = t.join("repos.txt");
    std::fs::write(
        &repos,
        "demo-org/alpha\ndemo-org/not-archived\ndemo-org/beta\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace("[evolve]\n", "[evolve]\nslices = 2\nbatch_repos = 1\n");
    std::fs::write(&cfg, text).unwrap();
    let repos_arg = repos.display().to_string();
    let local_pairs = t.join("local-pairs");
    let o = unearth_with(
        &[
            "evolve",
            "--repos",
            &repos_arg,
            "--set",
            &format!("evolve.out={}", local_pairs.display()),
        ],
        &cfg,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids = submit_with(&cluster, &cfg, &["--evolve", "--repos", &repos_arg]);
    assert_eq!(ids.len(), 2, "an array and a merge job: {ids:?}");
    let settled = wait_completed(&cluster, &ids);
    assert!(
        settled.contains("_1 COMPLETED"),
        "a 2-task array: {settled}"
    );
    let read = |dir: &Path| {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(
                std::fs::File::open(dir.join("pairs.jsonl.gz")).unwrap(),
            ),
            &mut text,
        )
        .unwrap();
        text
    };
    let cluster_pairs = read(&t.join("cluster/work/evolve"));
    assert!(
        cluster_pairs.contains("\"from_version\":\"v0.1\""),
        "{cluster_pairs}"
    );
    assert_eq!(cluster_pairs, read(&local_pairs));

    // `unearth hydrate` as Slurm jobs (its fetch a 2-task array and a merge) gives what a
    // local hydration gives, the dataset included.
    let demo = t.join("cluster");
    let stack = demo.join("stack.parquet");
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stack-ids.py"))
        .arg(&demo)
        .arg(&stack)
        .args(["--rows", "40", "--missing", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hydrate_config = |name: &str| {
        let path = demo.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "metadata = \"stack.parquet\"\nworkdir = \"{name}-work\"\n\n\
                 [fetch]\nstore = \"file://objects/content\"\n\n\
                 [shards]\nfetch = 2\ndataset = 3\n\n[slurm.default]\ncpus = 1\nmem = \"200M\"\n"
            ),
        )
        .unwrap();
        path
    };
    let hydrated = |work: &Path| {
        let mut rows = Vec::new();
        for f in parquet_files(&work.join("export")) {
            let b = unearth::table::read(&f).unwrap();
            let s = |n: &str| unearth::table::strings(&b, &f, n).unwrap();
            let (st, sha, content) = (s("status"), s("sha1"), s("content"));
            for i in 0..b.num_rows() {
                rows.push(format!("{:?} {:?} {:?}", st[i], sha[i], content[i]));
            }
        }
        let mut data = Vec::new();
        for f in parquet_files(&work.join("dataset/data")) {
            let b = unearth::table::read(&f).unwrap();
            data.extend(unearth::table::strings(&b, &f, "blob_id").unwrap());
        }
        data.sort();
        (rows, data)
    };
    unearth_ok(&["hydrate"], &hydrate_config("hydrate-local"));
    let local = hydrated(&demo.join("hydrate-local-work"));
    assert_eq!(local.0.len(), 43, "every row has a status");
    assert_eq!(
        local
            .0
            .iter()
            .filter(|r| r.starts_with("Some(\"blob_missing\")"))
            .count(),
        3
    );
    let ids = submit_with(&cluster, &hydrate_config("hydrate-cluster"), &["--hydrate"]);
    assert_eq!(
        ids.len(),
        6,
        "content, export, and fetch and dataset as an array and a merge: {ids:?}"
    );
    let settled = wait_completed(&cluster, &ids);
    assert!(
        settled.contains("_1 COMPLETED"),
        "a 2-task array: {settled}"
    );
    let work = demo.join("hydrate-cluster-work");
    assert!(work
        .join("fetch-shard-0001-of-0002/manifest.json")
        .is_file());
    assert!(work
        .join("dataset-shard-0002-of-0003/manifest.json")
        .is_file());
    assert_eq!(hydrated(&work), local);

    // A failing array task: the content shard that reads the skipped_content table breaks.
    let cfg = demo_with_shards(t, "failing");
    let orc = t.join("failing/orc/skipped_content");
    let file = std::fs::read_dir(&orc)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"not an ORC file").unwrap();
    let ids = submit(&cluster, &cfg);
    wait_jobs(&cluster, &ids, |q| q.contains("DependencyNeverSatisfied"));
    let o = unearth()
        .args(["status"])
        .arg(t.join("failing/work"))
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    let status = String::from_utf8(o.stdout).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("content shard 1/2"))
        .unwrap_or("");
    assert!(
        line.contains("failed"),
        "status names the failed shard:\n{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("content shard 0/2") && l.contains("done")),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("export ") && !l.contains("done")),
        "{status}"
    );
    // The dependent jobs stay pending; they are cancelled before resubmitting.
    let _ = Command::new("scancel")
        .args(&ids)
        .env("SLURM_CONF", &cluster.conf)
        .status();

    // Fixed and resubmitted: finishes, and what was done is not redone.
    let done_before: Vec<(PathBuf, SystemTime)> = [
        "scan-shard-0000-of-0003",
        "labels-shard-0001-of-0002",
        "content-shard-0000-of-0002",
        "walk",
    ]
    .iter()
    .map(|n| {
        let m = t.join("failing/work").join(n).join("manifest.json");
        let time = mtime(&m);
        (m, time)
    })
    .collect();
    std::fs::write(&file, good).unwrap();
    let ids = submit(&cluster, &cfg);
    wait_completed(&cluster, &ids);
    for (m, time) in done_before {
        assert_eq!(mtime(&m), time, "{} was redone", m.display());
    }
    assert_eq!(export_rows(&t.join("failing/work")), want);

    // README's cluster commands, exactly as written, from the folder holding demo-archive.
    let readme = t.join("readme");
    std::fs::create_dir_all(&readme).unwrap();
    archive::demo::build_demo(&readme.join("demo-archive")).unwrap();
    let conf = cluster.conf.display().to_string();
    let mut ids = Vec::new();
    for (tag, cmds) in readme_blocks() {
        if tag != "slurm" {
            continue;
        }
        for cmd in cmds {
            let o = run_readme_command(&readme, &cmd, &[("SLURM_CONF", &conf)]);
            assert!(
                o.status.success(),
                "README command failed: {cmd}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            ids.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| l.starts_with("submitted "))
                    .filter_map(|l| l.rsplit_once("job ").map(|(_, id)| id.to_string())),
            );
        }
    }
    assert_eq!(
        ids.len(),
        16,
        "11 phases, 5 as an array and a merge: {ids:?}"
    );
    wait_completed(&cluster, &ids);
    assert_eq!(export_rows(&readme.join("demo-archive/work")), want);
}
