//! Helpers shared by the integration tests: running git (the ground truth), the unearth
//! binary, and looking nodes up in a loaded graph.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use swh_graph::labels::EdgeLabel;
use swh_graph::SWHID;
use unearth::graph::FullGraph;

/// Runs `git` in `repo` and returns its stdout as bytes; panics with stderr on failure.
pub fn git_bytes(repo: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        repo.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Like [`git_bytes`], as text lines.
pub fn git_lines(repo: &Path, args: &[&str]) -> Vec<String> {
    // Lossy: some outputs carry file names, which need not be UTF-8.
    String::from_utf8_lossy(&git_bytes(repo, args))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs git with a fixed identity and dates, for building test repositories.
pub fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.org")
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00+0100")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00+0100")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates an empty repository with `main` as its branch.
pub fn init_repo(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
}

/// The `unearth` binary of this build.
pub fn unearth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_unearth"));
    c.env("RUST_LOG", "warn");
    c
}

/// Refs SWH's git loader keeps, with the object each names: `(name, id)`.
pub fn kept_refs(repo: &Path) -> Vec<(String, String)> {
    git_lines(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .into_iter()
        .filter_map(|l| {
            let (name, id) = l.split_once(' ')?;
            let is_merge = name.starts_with("refs/pull/") && name.ends_with("/merge");
            (!is_merge && !name.ends_with("^{}")).then(|| (name.to_string(), id.to_string()))
        })
        .collect()
}

/// Node id of a SWHID given as text; panics when absent.
pub fn node(graph: &impl FullGraph, swhid: &str) -> usize {
    let swhid = SWHID::from_str(swhid).unwrap_or_else(|e| panic!("{swhid}: {e}"));
    graph
        .properties()
        .node_id(swhid)
        .unwrap_or_else(|e| panic!("{swhid} is not in the graph: {e}"))
}

/// Whether the graph has a node for this SWHID.
pub fn has_node(graph: &impl FullGraph, swhid: &str) -> bool {
    let swhid = SWHID::from_str(swhid).unwrap();
    graph.properties().node_id(swhid).is_ok()
}

/// SWHIDs of the successors of `n`, sorted.
pub fn successors(graph: &impl FullGraph, n: usize) -> BTreeSet<String> {
    graph
        .successors(n)
        .into_iter()
        .map(|s| graph.properties().swhid(s).to_string())
        .collect()
}

/// Labelled directory entries of `n`: `(name bytes, git mode, target SWHID)`.
pub fn dir_entries(graph: &impl FullGraph, n: usize) -> BTreeSet<(Vec<u8>, u16, String)> {
    let mut out = BTreeSet::new();
    for (succ, labels) in graph.labeled_successors(n) {
        let target = graph.properties().swhid(succ).to_string();
        for label in labels {
            if let EdgeLabel::DirEntry(e) = label {
                let name = graph.properties().label_name(e.label_name_id());
                let mode = e.permission().map(|p| p.to_git()).unwrap_or(0);
                out.insert((name, mode, target.clone()));
            }
        }
    }
    out
}

/// Branches of snapshot node `n` that are arcs (aliases are not): `(name, target SWHID)`.
pub fn branches(graph: &impl FullGraph, n: usize) -> BTreeSet<(Vec<u8>, String)> {
    let mut out = BTreeSet::new();
    for (succ, labels) in graph.labeled_successors(n) {
        let target = graph.properties().swhid(succ).to_string();
        for label in labels {
            if let EdgeLabel::Branch(b) = label {
                out.insert((
                    graph.properties().label_name(b.label_name_id()),
                    target.clone(),
                ));
            }
        }
    }
    out
}

/// A fresh temporary folder that lives as long as the value.
/// The archive of one git repository (origin `url`), built into `dir`.
pub fn archive_one(dir: &Path, url: &str, repo: &Path) -> unearth::archive::ArchiveDir {
    unearth::archive::build(
        dir,
        &unearth::archive::BuildOptions {
            repos: vec![
                unearth::archive::RepoSpec::parse(&format!("{url}={}", repo.display())).unwrap(),
            ],
            max_content_size: 1 << 20,
            rows_per_file: 1000,
        },
        "",
    )
    .unwrap();
    unearth::archive::ArchiveDir::new(dir)
}

/// Writes the `run` configuration of `archive` with `meta` into `config`: work directory
/// `work`, the archive's ORC tables and blob store, and `dataset` as the `[dataset]` table's
/// body.
pub fn write_run_config(
    config: &Path,
    archive: &unearth::archive::ArchiveDir,
    meta: &Path,
    work: &Path,
    dataset: &str,
) {
    std::fs::write(
        config,
        format!(
            "graph = {:?}\nmetadata = {:?}\nworkdir = {:?}\norc = {:?}\n\n\
             [fetch]\nstore = \"file://{}\"\n\n[dataset]\n{dataset}",
            archive.graph().display().to_string(),
            meta.display().to_string(),
            work.display().to_string(),
            archive.orc().display().to_string(),
            archive.contents().display(),
        ),
    )
    .unwrap();
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("unearth-test-")
        .tempdir()
        .expect("temp dir")
}

/// `../shared/swh-example-dataset`, present on CI and the team's machines. Elsewhere the
/// caller returns early and the test says loudly that it did not run; on CI its absence fails.
pub fn shared_example() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/swh-example-dataset");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("../shared/swh-example-dataset is missing on CI");
    }
    eprintln!("NOT RUN: ../shared/swh-example-dataset is absent; this test did not run");
    None
}

/// The Parquet files directly in `dir`, sorted by name (phase outputs are numbered).
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

/// Runs `unearth ARGS --config CONFIG`, whatever its outcome.
pub fn unearth_with(args: &[&str], config: &Path) -> std::process::Output {
    unearth()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("unearth runs")
}

/// Runs `unearth ARGS --config CONFIG` and checks that it succeeded.
pub fn unearth_ok(args: &[&str], config: &Path) -> std::process::Output {
    let o = unearth_with(args, config);
    assert!(
        o.status.success(),
        "unearth {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The exported dataset of `workdir` as one line per row (row id, status, revision, content
/// id, content), in file order: what two runs must agree on.
pub fn export_rows(workdir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for f in parquet_files(&workdir.join("export")) {
        let b = unearth::table::read(&f).unwrap();
        let ids = unearth::table::u64s(&b, &f, "row_id").unwrap();
        let s = |n: &str| unearth::table::strings(&b, &f, n).unwrap();
        let (st, sha, content, rev) = (s("status"), s("sha1_git"), s("content"), s("revision"));
        for i in 0..b.num_rows() {
            rows.push(format!(
                "{} {:?} {:?} {:?} {:?}",
                ids[i], st[i], rev[i], sha[i], content[i]
            ));
        }
    }
    rows
}

/// The `sh` blocks of README.md, with the tag of the `<!-- readme-test: TAG -->` line before
/// each, as lists of command lines (comments and continuation comments dropped).
pub fn readme_blocks() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut blocks = Vec::new();
    let mut tag: Option<String> = None;
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        if let Some(t) = line
            .strip_prefix("<!-- readme-test: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            tag = Some(t.to_string());
            continue;
        }
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => {
                let cmds = current.take().unwrap_or_default();
                blocks.push((tag.take().unwrap_or_default(), cmds));
            }
            (Some(cmds), l) => {
                if !l.is_empty() && !l.starts_with('#') {
                    let cmd = match l.find("  #") {
                        Some(i) => l[..i].trim_end(),
                        None => l,
                    };
                    cmds.push(cmd.to_string());
                }
            }
            (None, _) => {
                if !line.trim().is_empty() && !line.starts_with("<!--") {
                    tag = None;
                }
            }
        }
    }
    blocks
}

/// Runs one README command line with `bash` in `dir`, `unearth` being this build's binary.
pub fn run_readme_command(dir: &Path, cmd: &str, env: &[(&str, &str)]) -> std::process::Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_unearth"))
        .parent()
        .expect("binary folder")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    // A user's shell, not the test harness's: the variables cargo gives tests (library path,
    // CARGO_MANIFEST_DIR...) would make a cargo build in the command redo every build script
    // that watches them, and everything above.
    c.args(["-c", cmd])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("RUST_LOG", "warn");
    for keep in [
        "HOME",
        "USER",
        "LANG",
        "TMPDIR",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_INCREMENTAL",
        "CI",
    ] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("bash runs")
}

/// Resolves `cfg`'s rows again with the other label strategy (`levels` / `single-pass`), in a
/// work directory beside its own, and checks that the `resolved` files are byte for byte those
/// the first run wrote (which must exist); returns the labels counts of both runs, the
/// configuration's first.
pub fn strategies_agree(cfg: &unearth::config::Config) -> [serde_json::Value; 2] {
    use unearth::model::Phase;
    let mut alt = cfg.clone();
    alt.options.strategy = cfg.options.strategy.other();
    let name = cfg
        .workdir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    alt.workdir = cfg
        .workdir
        .with_file_name(format!("{name}-{}", alt.options.strategy.name()));
    unearth::pipeline::Pipeline::open(alt.clone())
        .unwrap()
        .run_until(Phase::Walk)
        .unwrap();
    let ours = parquet_files(&cfg.workdir.join("walk"));
    let theirs = parquet_files(&alt.workdir.join("walk"));
    assert!(
        !ours.is_empty(),
        "{} has no resolved file",
        cfg.workdir.display()
    );
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} and {} differ",
            a.display(),
            b.display()
        );
    }
    let counts = |w: &Path| {
        let text = std::fs::read_to_string(w.join("labels/manifest.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["counts"].clone()
    };
    [counts(&cfg.workdir), counts(&alt.workdir)]
}

/// Joins `cfg`'s contents again with each source alone (the ORC tables; the digestmap with
/// the graph's content properties), in work directories beside its own, and checks them
/// against the join the first run wrote (which must exist, from both sources): the ORC scan
/// gives the same file byte for byte; the digestmap alone gives the same contents, lengths
/// and statuses, without what only the `skipped_content` table holds (SWH's reason and sha1 of
/// a skipped content). Returns the content counts of
/// the two single-source runs, ORC first.
pub fn joins_agree(cfg: &unearth::config::Config) -> [serde_json::Value; 2] {
    use unearth::artifacts::join;
    use unearth::model::Phase;
    assert!(
        cfg.orc.is_some() && cfg.digestmap.is_some(),
        "the configuration names both sources"
    );
    let ours = cfg.workdir.join("content").join(join::JOIN);
    let name = cfg.workdir.file_name().unwrap().to_string_lossy();
    let alone = |orc: bool| {
        let mut alt = cfg.clone();
        let which = if orc { "orc" } else { "digestmap" };
        if orc {
            alt.digestmap = None;
        } else {
            alt.orc = None;
        }
        alt.workdir = cfg.workdir.with_file_name(format!("{name}-{which}"));
        unearth::pipeline::Pipeline::open(alt.clone())
            .unwrap()
            .run_until(Phase::Content)
            .unwrap();
        alt.workdir
    };
    let (orc, map) = (alone(true), alone(false));
    let orc_join = orc.join("content").join(join::JOIN);
    assert!(
        std::fs::read(&ours).unwrap() == std::fs::read(&orc_join).unwrap(),
        "{} and {} differ",
        ours.display(),
        orc_join.display()
    );
    let by_orc = join::load(&orc_join).unwrap();
    let by_map = join::load(&map.join("content").join(join::JOIN)).unwrap();
    let strip = |m: &join::JoinMap| {
        let skipped = unearth::model::ContentStatus::Skipped;
        let mut v: Vec<_> = m
            .iter()
            .map(|(id, k)| {
                (
                    *id,
                    k.sha1.filter(|_| k.status != skipped),
                    k.length,
                    k.status,
                )
            })
            .collect();
        v.sort_unstable_by_key(|r| r.0);
        v
    };
    assert!(!by_orc.is_empty(), "the join found no content");
    assert_eq!(strip(&by_orc), strip(&by_map));
    assert!(by_map.values().all(|k| k.reason.is_none()));
    let counts = |w: &Path| {
        let text = std::fs::read_to_string(w.join("content/manifest.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["counts"].clone()
    };
    [counts(&orc), counts(&map)]
}
