//! `unearth archive build` on repositories made with the git CLI: output against git,
//! reproducibility, missing objects, bad input; and SWH's own example graph loaded by the
//! same code path.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use swh_graph::graph::{SwhGraph, SwhGraphWithProperties};
use unearth::archive::{ArchiveDir, Manifest};

/// A repository with two commits, a tag and a branch, made with the git CLI.
fn small_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("small");
    init_repo(&repo);
    std::fs::create_dir_all(repo.join("src/deep")).unwrap();
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    std::fs::write(repo.join("src/deep/x.rs"), "fn main() {}\n").unwrap();
    std::fs::write(repo.join("big.dat"), vec![7u8; 5000]).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    git(&repo, &["tag", "-a", "v1", "-m", "first"]);
    git(&repo, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(repo.join("README"), "hello again\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "two"]);
    git(&repo, &["checkout", "-q", "main"]);
    repo
}

fn build(out: &Path, repos: &[String], extra: &[&str]) -> std::process::Output {
    let mut cmd = unearth();
    cmd.args(["archive", "build", "--out"]).arg(out);
    for r in repos {
        cmd.args(["--repo", r]);
    }
    cmd.args(extra);
    cmd.output().expect("unearth runs")
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn built_archive_matches_git_and_is_reproducible() {
    let tmp = tempdir();
    let repo = small_repo(tmp.path());
    let spec = vec![
        format!("https://example.org/a/small={}@2021-03-04", repo.display()),
        // The same repository under a second URL: a fork.
        format!(
            "https://example.org/b/fork={}@2022-01-01T10:00:00Z",
            repo.display()
        ),
    ];
    let out1 = tmp.path().join("one");
    let o = build(&out1, &spec, &["--max-content-size", "4096"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let manifest = Manifest::read(&out1).unwrap();
    assert_eq!(manifest.visits.len(), 2);
    assert_eq!(
        manifest.visits[0].snapshot, manifest.visits[1].snapshot,
        "fork: same refs"
    );
    assert_eq!(manifest.skipped_blobs, 1, "big.dat is over the cap");
    assert_eq!(manifest.visits[0].time, 1_614_816_000);

    let graph = unearth::graph::open(&ArchiveDir::new(&out1).graph()).unwrap();
    let props = graph.properties();
    for commit in git_lines(&repo, &["rev-list", "--all"]) {
        let n = node(&graph, &format!("swh:1:rev:{commit}"));
        let tree = git_lines(&repo, &["rev-parse", &format!("{commit}^{{tree}}")]);
        assert!(successors(&graph, n).contains(&format!("swh:1:dir:{}", tree[0])));
    }
    let head_tree = git_lines(&repo, &["rev-parse", "HEAD^{tree}"]);
    let n = node(&graph, &format!("swh:1:dir:{}", head_tree[0]));
    let names: BTreeSet<Vec<u8>> = dir_entries(&graph, n).into_iter().map(|e| e.0).collect();
    let expected: BTreeSet<Vec<u8>> = git_lines(&repo, &["ls-tree", "--name-only", "HEAD"])
        .into_iter()
        .map(String::into_bytes)
        .collect();
    assert_eq!(names, expected);
    let big = git_lines(&repo, &["rev-parse", "HEAD:big.dat"]);
    let big = node(&graph, &format!("swh:1:cnt:{}", big[0]));
    assert!(props.is_skipped_content(big));
    assert_eq!(props.content_length(big), Some(5000));
    let origins: BTreeSet<Vec<u8>> = (0..graph.num_nodes())
        .filter(|&n| props.node_type(n) == swh_graph::NodeType::Origin)
        .filter_map(|n| props.message(n))
        .collect();
    assert_eq!(
        origins,
        [
            b"https://example.org/a/small".to_vec(),
            b"https://example.org/b/fork".to_vec()
        ]
        .into()
    );

    // Same input, second build: byte-identical output.
    let out2 = tmp.path().join("two");
    let o = build(&out2, &spec, &["--max-content-size", "4096"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (f1, f2) = (files_under(&out1), files_under(&out2));
    assert_eq!(f1, f2);
    for f in &f1 {
        assert!(
            std::fs::read(out1.join(f)).unwrap() == std::fs::read(out2.join(f)).unwrap(),
            "{} differs between two builds of the same input",
            f.display()
        );
    }
}

#[test]
fn missing_objects_are_reported_and_the_build_goes_on() {
    let tmp = tempdir();
    let repo = small_repo(tmp.path());
    // Pack nothing: objects are loose, so one can be deleted as a partial clone would lack it.
    let blob = git_lines(&repo, &["rev-parse", "HEAD:src/deep/x.rs"])[0].clone();
    std::fs::remove_file(repo.join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    let out = tmp.path().join("out");
    let o = build(
        &out,
        &[format!("https://example.org/p={}", repo.display())],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = Manifest::read(&out).unwrap();
    assert_eq!(manifest.visits[0].status, "partial");
    assert_eq!(manifest.visits[0].missing.len(), 1);
    assert!(manifest.visits[0].missing[0].starts_with(&blob));
    let graph = unearth::graph::open(&ArchiveDir::new(&out).graph()).unwrap();
    let n = node(&graph, &format!("swh:1:cnt:{blob}"));
    assert_eq!(graph.properties().content_length(n), None);
}

fn assert_clean_failure(o: &std::process::Output, needle: &str, out: &Path) {
    assert!(!o.status.success(), "must fail");
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "stderr: {err}"
    );
    assert!(!out.exists(), "nothing is left at {}", out.display());
    if let Some(parent) = out.parent().filter(|p| p.is_dir()) {
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary folders left: {leftovers:?}"
        );
    }
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let not_repo = tmp.path().join("plain");
    std::fs::create_dir_all(&not_repo).unwrap();
    let o = build(
        &out,
        &[format!("https://example.org/x={}", not_repo.display())],
        &[],
    );
    assert_clean_failure(&o, "is not a git repository", &out);

    let o = build(&out, &["no-equals-sign".to_string()], &[]);
    assert_clean_failure(&o, "invalid --repo", &out);
    let o = build(&out, &["ftp:/bad=/tmp".to_string()], &[]);
    assert_clean_failure(&o, "invalid --repo", &out);

    let repo = small_repo(tmp.path());
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let unwritable = file.join("out");
    let o = build(
        &unwritable,
        &[format!("https://example.org/x={}", repo.display())],
        &[],
    );
    assert_clean_failure(&o, "cannot write --out", &unwritable);
    // A missing parent folder is named as missing, not created.
    let orphan = tmp.path().join("no-such-folder/out");
    let o = build(
        &orphan,
        &[format!("https://example.org/x={}", repo.display())],
        &[],
    );
    assert_clean_failure(&o, "does not exist", &orphan);
    assert!(!tmp.path().join("no-such-folder").exists());
}

#[test]
fn example_dataset_loads_by_the_same_code_path() {
    let Some(example) = shared_example() else {
        return;
    };
    let graph = unearth::graph::open(&example.join("compressed/example")).expect("loads");
    let s = unearth::graph::summarize(&graph);
    assert_eq!((s.nodes, s.arcs), (24, 28));
    assert_eq!(
        s.origins,
        [
            "https://example.com/swh/graph",
            "https://example.com/swh/graph2"
        ]
    );
    for b in ["refs/heads/master", "refs/tags/v1.0"] {
        assert!(
            s.branch_names.iter().any(|n| n == b),
            "{b} in {:?}",
            s.branch_names
        );
    }
    let expected: Vec<(String, usize)> = [
        ("cnt", 7),
        ("dir", 6),
        ("ori", 2),
        ("rel", 3),
        ("rev", 4),
        ("snp", 2),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), *n))
    .collect();
    assert_eq!(s.nodes_per_type.into_iter().collect::<Vec<_>>(), expected);
    let dir = node(&graph, "swh:1:dir:0000000000000000000000000000000000000008");
    let names: BTreeSet<Vec<u8>> = dir_entries(&graph, dir).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            b"README.md".to_vec(),
            b"parser.c".to_vec(),
            b"tests".to_vec()
        ]
        .into()
    );
}

#[test]
fn orc_tables_have_the_export_schema_and_git_counts() {
    let Some(example) = shared_example() else {
        return;
    };
    let tmp = tempdir();
    let repo = small_repo(tmp.path());
    let out = tmp.path().join("out");
    let o = build(
        &out,
        &[format!("https://example.org/s={}", repo.display())],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // pyarrow is an independent ORC reader; the example dataset is SWH's own export.
    let script = r#"
import sys, glob, os, pyarrow.orc as orc
ex, ours = sys.argv[1], sys.argv[2]
for t in sorted(os.listdir(ex)):
    want = [(f.name, str(f.type)) for f in orc.ORCFile(glob.glob(f"{ex}/{t}/*.orc")[0]).schema]
    files = glob.glob(f"{ours}/{t}/*.orc")
    assert files, f"table {t} is missing"
    for path in files:
        got = [(f.name, str(f.type)) for f in orc.ORCFile(path).schema]
        assert got == want, f"{t}: {got} != {want}"
    print(t, sum(orc.ORCFile(p).nrows for p in files))
"#;
    let out_py = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(example.join("orc"))
        .arg(out.join("orc"))
        .output()
        .unwrap();
    assert!(
        out_py.status.success(),
        "pyarrow check: {}",
        String::from_utf8_lossy(&out_py.stderr)
    );
    let rows: std::collections::BTreeMap<String, usize> = String::from_utf8(out_py.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, n) = l.split_once(' ').unwrap();
            (t.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 13);
    let commits = git_lines(&repo, &["rev-list", "--all"]).len();
    assert_eq!(rows["revision"], commits);
    assert_eq!(rows["release"], 1);
    assert_eq!(rows["origin"], 1);
    // main, dev, v1 and HEAD.
    assert_eq!(rows["snapshot_branch"], 4);
    let blobs = git_lines(&repo, &["rev-list", "--all", "--objects"])
        .iter()
        .filter(|l| {
            let id = l.split(' ').next().unwrap();
            git_lines(&repo, &["cat-file", "-t", id]) == ["blob"]
        })
        .count();
    assert_eq!(rows["content"] + rows["skipped_content"], blobs);
}
