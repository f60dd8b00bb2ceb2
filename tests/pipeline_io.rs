//! The pipeline's edges: malformed metadata, checkpoints reused or redone, and a work
//! directory of another graph refused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, LargeStringArray, StringArray};
use common::unearth_with as unearth_run;
use common::*;
use unearth::archive;

fn demo(tmp: &Path) -> PathBuf {
    let out = tmp.join("demo");
    archive::demo::build_demo(&out).unwrap();
    out
}

fn config(dir: &Path, graph: &Path, metadata: &Path) -> PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            "graph = {:?}\nmetadata = {:?}\nworkdir = \"work\"\n",
            graph.display().to_string(),
            metadata.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn last_line(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[test]
fn malformed_metadata_fails_naming_file_and_column() {
    let tmp = tempdir();
    let t = tmp.path();
    let graph = archive::ArchiveDir::new(demo(t)).graph();
    type Case<'a> = (&'a str, Box<dyn Fn(&Path)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing column",
            Box::new(|p: &Path| {
                unearth::table::write(
                    p,
                    vec![
                        ("repo", Arc::new(StringArray::from(vec!["a/b"])) as ArrayRef),
                        ("commit_id", Arc::new(StringArray::from(vec!["abcd"]))),
                    ],
                )
                .unwrap();
            }),
            "column rel_path: missing",
        ),
        (
            "wrong type",
            Box::new(|p: &Path| {
                unearth::table::write(
                    p,
                    vec![
                        ("repo", Arc::new(StringArray::from(vec!["a/b"])) as ArrayRef),
                        ("commit_id", Arc::new(Int64Array::from(vec![1234]))),
                        ("rel_path", Arc::new(StringArray::from(vec!["x"]))),
                    ],
                )
                .unwrap();
            }),
            "column commit_id: type Int64",
        ),
        (
            "corrupt",
            Box::new(|p: &Path| {
                std::fs::write(p, b"PAR1 this is not parquet at all PAR1").unwrap()
            }),
            "not a readable Parquet file",
        ),
        (
            "empty",
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
            "not a readable Parquet file",
        ),
    ];
    for (what, make, needle) in cases {
        let dir = t.join(what.replace(' ', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = dir.join("bad.parquet");
        make(&meta);
        let cfg = config(&dir, &graph, &meta);
        let o = unearth_run(&["run"], &cfg);
        assert!(!o.status.success(), "{what}: must fail");
        let line = last_line(&o);
        assert!(line.starts_with("error: "), "{what}: {line}");
        assert!(line.contains(needle), "{what}: {line}");
        assert!(
            line.contains("bad.parquet"),
            "{what}: names the file: {line}"
        );
        assert!(
            !dir.join("work/plan").exists(),
            "{what}: no plan written as complete"
        );
    }
}

#[test]
fn large_utf8_and_extra_columns_are_accepted_and_carried() {
    let tmp = tempdir();
    let t = tmp.path();
    let out = demo(t);
    let head = git_lines(
        &out.join("repos/alpha.git"),
        &["rev-parse", "refs/heads/main"],
    )[0]
    .clone();
    let meta = t.join("large.parquet");
    unearth::table::write(
        &meta,
        vec![
            (
                "repo",
                Arc::new(LargeStringArray::from(vec![
                    "demo-org/alpha",
                    "demo-org/alpha",
                ])) as ArrayRef,
            ),
            (
                "commit_id",
                Arc::new(LargeStringArray::from(vec![&head[..7], "zz"])),
            ),
            (
                "rel_path",
                Arc::new(LargeStringArray::from(vec!["README.md", "README.md"])),
            ),
            (
                "status",
                Arc::new(StringArray::from(vec!["theirs", "theirs"])),
            ),
            (
                "language",
                Arc::new(StringArray::from(vec!["Markdown", "Markdown"])),
            ),
        ],
    )
    .unwrap();
    let cfg = config(t, &archive::ArchiveDir::new(&out).graph(), &meta);
    let o = unearth_run(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = t.join("work/walk/resolved-00000.parquet");
    let b = unearth::table::read(&path).unwrap();
    let s = |n: &str| unearth::table::strings(&b, &path, n).unwrap();
    assert_eq!(
        s("status"),
        [Some("ok".to_string()), Some("invalid".to_string())]
    );
    assert_eq!(
        s("input_status"),
        [Some("theirs".to_string()), Some("theirs".to_string())]
    );
    assert_eq!(s("language")[0].as_deref(), Some("Markdown"));
    let rejects = t.join("work/plan/rejects.parquet");
    let r = unearth::table::read(&rejects).unwrap();
    let reasons = unearth::table::strings(&r, &rejects, "reason").unwrap();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].as_ref().unwrap().contains("zz"));
}

#[test]
fn checkpoints_are_reused_redone_and_refused() {
    let tmp = tempdir();
    let t = tmp.path();
    let out = demo(t);
    let graph = archive::ArchiveDir::new(&out).graph();
    let meta = t.join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::copy(
        out.join("metadata/part_0.parquet"),
        meta.join("part_0.parquet"),
    )
    .unwrap();
    let cfg = config(t, &graph, &meta);

    let o = unearth_run(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = unearth_run(&["run"], &cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("skipped, checkpoint current").count(),
        7,
        "{err}"
    );

    // A single phase can be rerun; it is skipped while current.
    let o = unearth_run(&["labels"], &cfg);
    assert!(String::from_utf8_lossy(&o.stderr).contains("labels  skipped"));

    // A second metadata part: everything is redone, and the new rows appear.
    std::fs::copy(
        out.join("metadata/part_0.parquet"),
        meta.join("part_1.parquet"),
    )
    .unwrap();
    let o = unearth_run(&["run"], &cfg);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches(" done (").count(), 7, "{err}");
    let rows: usize = (0..2)
        .map(|i| {
            let p = t.join(format!("work/walk/resolved-{i:05}.parquet"));
            unearth::table::read(&p).unwrap().num_rows()
        })
        .sum();
    let planned = unearth::table::read(&out.join("metadata/part_0.parquet"))
        .unwrap()
        .num_rows();
    assert_eq!(rows, 2 * planned);

    // The same work directory with another graph is refused.
    let other = t.join("other");
    let o = unearth()
        .args(["archive", "build", "--out"])
        .arg(&other)
        .args([
            "--repo",
            &format!(
                "https://github.com/x/y={}",
                out.join("repos/gamma.git").display()
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg2 = config(t, &archive::ArchiveDir::new(&other).graph(), &meta);
    let o = unearth_run(&["run"], &cfg2);
    assert!(!o.status.success());
    let line = last_line(&o);
    assert!(line.contains("holds checkpoints made from graph"), "{line}");

    // A phase asked for before its inputs exist says which one to run.
    let fresh = t.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let cfg3 = config(&fresh, &graph, &meta);
    let o = unearth_run(&["walk"], &cfg3);
    assert!(!o.status.success());
    assert!(
        last_line(&o).contains("needs phase plan"),
        "{}",
        last_line(&o)
    );
}

#[test]
fn metadata_written_by_pyarrow_with_snappy_is_read() {
    // pyarrow's default codec is snappy, as in most published Parquet datasets.
    let tmp = tempdir();
    let t = tmp.path();
    let out = demo(t);
    let head = git_lines(
        &out.join("repos/alpha.git"),
        &["rev-parse", "refs/heads/main"],
    )[0]
    .clone();
    let meta = t.join("snappy.parquet");
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.table({{'repo': ['demo-org/alpha'], 'commit_id': ['{}'], \
         'rel_path': ['README.md']}}), {:?}, compression='snappy')",
        &head[..7],
        meta.display().to_string()
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = config(t, &archive::ArchiveDir::new(&out).graph(), &meta);
    let o = unearth_run(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: 1"));
}

#[test]
fn slurm_dry_run_renders_arrays_chains_and_quoted_values() {
    let tmp = tempdir();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cluster.toml");
    let text = std::fs::read_to_string(&shipped).unwrap().replace(
        "account = \"my-project\"",
        "account = \"x'; touch /tmp/unearth-pwned; '\"",
    );
    let cfg = tmp.path().join("cluster.toml");
    std::fs::write(&cfg, text).unwrap();
    let o = unearth()
        .args(["slurm", "submit", "--dry-run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("#SBATCH --array=0-63"),
        "scan is a 64-task array"
    );
    assert!(
        out.contains("#SBATCH --array=0-511"),
        "fetch is a 512-task array"
    );
    assert!(out.contains("'--shard' \"${SLURM_ARRAY_TASK_ID}/64\""));
    assert!(out.contains("'scan' '--merge'"));
    assert!(
        out.contains("--dependency=afterok:<scan-merge>"),
        "match waits for the scan merge"
    );
    assert!(out.contains("#SBATCH --partition='bigmem'"));
    assert!(out.contains("#SBATCH --requeue"));
    assert!(
        out.contains(r"--account='x'\''; touch /tmp/unearth-pwned; '\'''"),
        "{out}"
    );
    // Rendered scripts are valid shell.
    let scripts: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("# /")).collect();
    assert_eq!(
        scripts.len(),
        16,
        "11 phases, 5 of them an array and a merge"
    );
    for s in scripts {
        let path = format!("/{s}");
        assert!(
            std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap()
                .success(),
            "{path}"
        );
    }
    assert!(!Path::new("/tmp/unearth-pwned").exists());
}

#[test]
fn bench_runs_from_any_directory() {
    let tmp = tempdir();
    let t = tmp.path();
    archive::demo::build_demo(&t.join("demo-archive")).unwrap();
    let elsewhere = t.join("elsewhere/deeper");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for (cwd, config) in [
        (t.to_path_buf(), "demo-archive/unearth.toml".to_string()),
        (
            elsewhere.clone(),
            "../../demo-archive/unearth.toml".to_string(),
        ),
        (
            PathBuf::from("/"),
            t.join("demo-archive/unearth.toml").display().to_string(),
        ),
    ] {
        let o = unearth()
            .args(["bench", "--config", &config])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bench --config {config} from {}: {}",
            cwd.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let report = String::from_utf8_lossy(&o.stdout);
        for phase in ["plan", "scan", "walk", "fetch", "export"] {
            assert!(report.contains(&format!("| {phase} |")), "{report}");
        }
    }
    // Its work folder sits beside the run's, and nothing of the user's is replaced.
    assert!(t.join("demo-archive/work.bench/bench.toml").is_file());
    std::fs::remove_dir_all(t.join("demo-archive/work.bench")).unwrap();
    std::fs::create_dir_all(t.join("demo-archive/work.bench")).unwrap();
    std::fs::write(t.join("demo-archive/work.bench/mine.txt"), "keep").unwrap();
    let o = unearth()
        .args(["bench", "--config", "demo-archive/unearth.toml"])
        .current_dir(t)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        last_line(&o).contains("not a benchmark folder"),
        "{}",
        last_line(&o)
    );
    assert!(t.join("demo-archive/work.bench/mine.txt").is_file());
}
