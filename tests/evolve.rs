//! `unearth evolve` against git: for every pair of consecutive tags, the diff applied with
//! `git apply` to a checkout of the from-tag gives the to-tag's tree (files within the caps
//! and filters), and the codebase lists exactly `git ls-tree -r <from-tag>`'s files that pass
//! the filters, with their bytes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;
use unearth::archive::{self, BuildOptions, RepoSpec};

const CAP: usize = 4000;

fn write(repo: &Path, path: &str, bytes: &[u8]) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn commit(repo: &Path, msg: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", msg]);
}

/// A repository with tags of every kind: lightweight and annotated, semver with a
/// pre-release, a name that is no version; changes of every kind: edits, a rename, a mode
/// change, a binary file, a symlink, a file becoming a link, a file over the cap, a missing
/// final newline; a large subtree that never changes; and a folder the filters leave out.
fn build_repo(repo: &Path) {
    init_repo(repo);
    write(repo, "README.md", b"# proj\n\nA project.\n");
    let body: String = (0..40).map(|i| format!("line {i}\n")).collect();
    write(repo, "src/a.py", body.as_bytes());
    write(repo, "src/b.py", b"def b():\n    return 1\n");
    write(repo, "src/old.py", b"gone soon\n");
    let util: String = (0..30).map(|i| format!("def f{i}(): pass\n")).collect();
    write(repo, "src/util.py", util.as_bytes());
    write(repo, "script.sh", b"#!/bin/sh\necho hi\n");
    write(repo, "data.bin", b"\x00\x01\x02binary\x00");
    write(repo, "big.txt", "x".repeat(CAP * 2).as_bytes());
    write(repo, "tests/test_a.py", b"assert True\n");
    write(repo, "nonl.txt", b"no newline at the end");
    write(
        repo,
        "requirements.txt",
        b"LibDep>=1.0  # archived\nmissing-dep==2\n",
    );
    for i in 0..12 {
        let deep: String = (0..=i).map(|d| format!("d{d}/")).collect();
        write(
            repo,
            &format!("vendor/{deep}f{i}.c"),
            format!("int f{i};\n").as_bytes(),
        );
    }
    std::os::unix::fs::symlink("README.md", repo.join("link")).unwrap();
    write(repo, "typed", b"a regular file, a link later\n");
    write(repo, "cr.txt", b"old mac\rline\n");
    commit(repo, "first");
    git(repo, &["tag", "v0.9.0-rc.1"]);

    let body2: String = (0..40)
        .map(|i| {
            if i == 20 {
                "changed\n".into()
            } else {
                format!("line {i}\n")
            }
        })
        .collect();
    write(repo, "src/a.py", body2.as_bytes());
    git(repo, &["mv", "src/b.py", "src/c.py"]);
    git(repo, &["rm", "-q", "src/old.py"]);
    write(repo, "src/new.py", b"print('new')\n");
    write(repo, "data.bin", b"\x00\x01\x03binary!\x00");
    write(repo, "nonl.txt", b"no newline at the end, still");
    write(repo, "cr.txt", b"old mac\rlines\n");
    write(repo, "tests/test_a.py", b"assert 1\n");
    git(repo, &["update-index", "--chmod=+x", "script.sh"]);
    std::fs::set_permissions(
        repo.join("script.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    commit(repo, "second");
    git(repo, &["tag", "-a", "v0.9.0", "-m", "release 0.9.0"]);

    std::fs::remove_file(repo.join("link")).unwrap();
    std::fs::create_dir_all(repo.join("docs")).unwrap();
    std::os::unix::fs::symlink("src/a.py", repo.join("link")).unwrap();
    std::fs::remove_file(repo.join("typed")).unwrap();
    std::os::unix::fs::symlink("README.md", repo.join("typed")).unwrap();
    write(repo, "docs/guide.md", b"Guide\n");
    write(repo, "nonl.txt", b"now ends with one\n");
    write(repo, "big.txt", "y".repeat(CAP * 2).as_bytes());
    write(repo, "src/a.py", b"");
    // Moved and edited: a rename by similarity (29 of 30 lines kept).
    std::fs::create_dir_all(repo.join("lib")).unwrap();
    git(repo, &["mv", "src/util.py", "lib/util.py"]);
    write(
        repo,
        "lib/util.py",
        util.replace("f7()", "seven()").as_bytes(),
    );
    commit(repo, "third");
    git(repo, &["tag", "-a", "v1.0.0", "-m", "release 1.0.0"]);
    git(repo, &["tag", "latest"]);
}

/// A PyPI-style dependency with two releases (the newest is the one included).
fn build_dependency(repo: &Path) {
    init_repo(repo);
    write(repo, "libdep/__init__.py", b"V = 1\n");
    commit(repo, "one");
    git(repo, &["tag", "v1.0"]);
    write(repo, "libdep/__init__.py", b"V = 2\n");
    write(repo, "setup.py", b"setup(name='libdep')\n");
    commit(repo, "two");
    git(repo, &["tag", "-a", "v1.1", "-m", "1.1"]);
}

/// The codebase text parsed: path -> Some(bytes) when inlined, None when listed.
fn parse_codebase(text: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').expect("header line");
        let header = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 1..];
        let inner = header
            .strip_prefix("=== ")
            .and_then(|h| h.strip_suffix(" ==="))
            .unwrap_or_else(|| panic!("not a header: {header:?}"));
        let open = inner.rfind(" (").unwrap();
        let (name, note) = (&inner[..open], &inner[open + 2..inner.len() - 1]);
        if note.ends_with("not included") {
            out.insert(name.to_string(), None);
            continue;
        }
        let n: usize = note.strip_suffix(" bytes").unwrap().parse().unwrap();
        out.insert(name.to_string(), Some(rest[..n].to_vec()));
        assert_eq!(rest[n], b'\n');
        rest = &rest[n + 1..];
    }
    out
}

/// `git ls-tree -r` of `treeish` in `repo`: path -> (mode, id).
fn ls_tree(repo: &Path, treeish: &str) -> BTreeMap<String, (String, String)> {
    git_lines(repo, &["ls-tree", "-r", treeish])
        .into_iter()
        .map(|l| {
            let (meta, path) = l.split_once('\t').unwrap();
            let f: Vec<&str> = meta.split(' ').collect();
            (path.to_string(), (f[0].to_string(), f[2].to_string()))
        })
        .collect()
}

fn keeps(path: &str) -> bool {
    !path.starts_with("tests/")
}

fn read_jsonl_gz(path: &Path) -> Vec<serde_json::Value> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An archive of the test repository and its dependency, and a configuration for them
/// (`extra` goes into `[evolve]`); returns the repository, the configuration and the output
/// folder.
fn setup(tmp: &Path, extra: &str) -> (PathBuf, PathBuf, PathBuf) {
    let repo = tmp.join("proj");
    build_repo(&repo);
    let dep = tmp.join("libdep");
    build_dependency(&dep);
    let archive_dir = tmp.join("archive");
    archive::build(
        &archive_dir,
        &BuildOptions {
            repos: vec![
                RepoSpec::parse(&format!("https://github.com/t/proj={}", repo.display())).unwrap(),
                RepoSpec::parse(&format!(
                    "https://pypi.org/project/libdep={}",
                    dep.display()
                ))
                .unwrap(),
            ],
            max_content_size: 1 << 20,
            rows_per_file: 1000,
        },
        "",
    )
    .unwrap();
    let layout = archive::ArchiveDir::new(&archive_dir);
    let out = tmp.join("pairs");
    let config = tmp.join("evolve.toml");
    std::fs::write(
        &config,
        format!(
            "graph = {:?}\nworkdir = {:?}\norc = {:?}\ndigestmap = {:?}\n\n\
             [fetch]\nstore = \"file://{}\"\n\n\
             [[evolve.repos]]\nname = \"t/proj\"\nexclude = [\"tests/*\"]\n\n\
             [[evolve.repos]]\nname = \"t/not-archived\"\n\n\
             [evolve]\nmax_file_size = {CAP}\nout = {:?}\n{extra}",
            layout.graph().display().to_string(),
            tmp.join("work").display().to_string(),
            layout.orc().display().to_string(),
            layout.digestmap().display().to_string(),
            layout.contents().display(),
            out.display().to_string(),
        ),
    )
    .unwrap();
    (repo, config, out)
}

#[test]
fn pairs_apply_with_git_and_codebases_match_ls_tree() {
    let tmp = tempdir();
    // One repository per batch: the output joins two parts (gzip of two members).
    let (repo, config, out) = setup(tmp.path(), "batch_repos = 1\n");
    let dep = tmp.path().join("libdep");
    let o = unearth_ok(&["evolve"], &config);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("2 pairs from 1 of 2 repositories"),
        "{stdout}"
    );

    let records = read_jsonl_gz(&out.join("pairs.jsonl.gz"));
    let pairs: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["from_version"].as_str().unwrap().to_string(),
                r["to_version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("v0.9.0-rc.1".to_string(), "v0.9.0".to_string()),
            ("v0.9.0".to_string(), "v1.0.0".to_string())
        ]
    );
    for r in &records {
        let (from, to) = (
            r["from_version"].as_str().unwrap(),
            r["to_version"].as_str().unwrap(),
        );
        assert_eq!(r["repo_name"], "t/proj");
        assert_eq!(r["origin_url"], "https://github.com/t/proj");
        let rev = git_lines(&repo, &["rev-parse", &format!("{from}^{{commit}}")]);
        assert_eq!(r["from_revision"], format!("swh:1:rev:{}", rev[0]));
        // Annotated tags carry their release id; the lightweight one has none.
        let kind = git_lines(&repo, &["cat-file", "-t", from]);
        if kind[0] == "tag" {
            let tag = git_lines(&repo, &["rev-parse", from]);
            assert_eq!(r["from_release"], format!("swh:1:rel:{}", tag[0]));
        } else {
            assert!(r["from_release"].is_null(), "{r}");
        }

        // The codebase: exactly the filtered files of ls-tree, inlined with git's bytes, or
        // listed when binary or over the cap.
        let mut codebase = parse_codebase(r["input_text"].as_str().unwrap());
        // The dependencies: the archived one at its newest release, with its bytes; the
        // other listed as missing.
        let deps: BTreeMap<String, Option<Vec<u8>>> = codebase
            .iter()
            .filter(|(k, _)| k.starts_with("dependency "))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        codebase.retain(|k, _| !k.starts_with("dependency "));
        let dep_tree = ls_tree(&dep, "v1.1");
        let mut want_deps: BTreeMap<String, Option<Vec<u8>>> = dep_tree
            .iter()
            .map(|(p, (_, id))| {
                let bytes = git_bytes(&dep, &["cat-file", "blob", id]);
                (format!("dependency pypi libdep v1.1: {p}"), Some(bytes))
            })
            .collect();
        want_deps.insert("dependency pypi missing-dep".into(), None);
        assert_eq!(deps, want_deps, "{from}: {}", r["input_text"]);
        assert_eq!(r["num_dependencies"], 1);
        let tree = ls_tree(&repo, from);
        let expected: BTreeSet<&String> = tree.keys().filter(|p| keeps(p)).collect();
        assert_eq!(codebase.keys().collect::<BTreeSet<_>>(), expected, "{from}");
        for (path, bytes) in &codebase {
            let git_bytes = git_bytes(&repo, &["cat-file", "blob", &tree[path].1]);
            match bytes {
                Some(b) => assert_eq!(b, &git_bytes, "{from}:{path}"),
                None => assert!(
                    git_bytes.len() > CAP || git_bytes.contains(&0),
                    "{from}:{path} listed but it is small text"
                ),
            }
        }
        assert_eq!(r["num_files_in_codebase"], expected.len());

        // The diff applies to a checkout of the from-tag and gives the to-tag's tree, except
        // for the files it lists as not diffed and those the filters leave out.
        let diff = r["output_text"].as_str().unwrap();
        let listed: BTreeSet<String> = diff
            .lines()
            .take_while(|l| !l.starts_with("diff --git"))
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split(" (").next().map(str::to_string))
            .filter(|p| !p.starts_with("Changed files"))
            .collect();
        let work = tmp.path().join(format!("apply-{from}"));
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                work.to_str().unwrap(),
                from,
            ],
        );
        let patch = tmp.path().join(format!("{from}.patch"));
        std::fs::write(&patch, diff).unwrap();
        git(&work, &["apply", patch.to_str().unwrap()]);
        git(&work, &["add", "-A"]);
        let applied = git_lines(&work, &["write-tree"]);
        let got = ls_tree(&repo, &applied[0]);
        let want = ls_tree(&repo, to);
        let compare =
            |t: &BTreeMap<String, (String, String)>| -> BTreeMap<String, (String, String)> {
                t.iter()
                    .filter(|(p, _)| keeps(p) && !listed.contains(*p))
                    .map(|(p, v)| (p.clone(), v.clone()))
                    .collect()
            };
        assert_eq!(compare(&got), compare(&want), "{from} -> {to}\n{diff}");
        assert!(!compare(&want).is_empty());
        // The moved and edited file is one rename with its hunk, as `git diff -M` shows it.
        if from == "v0.9.0" {
            assert!(
                diff.contains(
                    "similarity index 96%\nrename from src/util.py\nrename to lib/util.py\n"
                ),
                "{diff}"
            );
            assert!(
                diff.contains("-def f7(): pass\n+def seven(): pass\n"),
                "{diff}"
            );
            assert_eq!(r["num_files_changed"], 8, "{diff}");
        }
        // Binary and over-cap changes are the listed ones.
        assert!(
            listed.contains("data.bin") || from == "v0.9.0",
            "{listed:?}"
        );
    }
    // The large unchanged subtree (13 directories under vendor/) is never decoded by the
    // diffs: they decode both sides of each folder whose id changed (first pair: the root,
    // src and tests; second pair: the root and src) and the folders added (docs, lib):
    // 2*3 + 2*2 + 2 = 12, against 16 folders per tree for a listing (the codebases: 2 x 16, and the
    // dependency's tree, 2 folders, listed once for both pairs).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let c = &manifest["counts"];
    assert_eq!(c["diff_dirs_decoded"], 12, "{c}");
    assert_eq!(c["codebase_dirs_decoded"], 32 + 2, "{c}");
    assert!(c["diff_dirs_skipped"].as_u64().unwrap() >= 2, "{c}");
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("t/not-archived: origin not found"), "{card}");

    // Chat and Parquet carry the same pairs.
    let chat = read_jsonl_gz(&out.join("chat.jsonl.gz"));
    assert_eq!(chat.len(), 2);
    assert_eq!(chat[0]["messages"][1]["content"], records[0]["input_text"]);
    assert_eq!(chat[0]["messages"][2]["content"], records[0]["output_text"]);
    let table = unearth::table::read(&out.join("pairs.parquet")).unwrap();
    assert_eq!(table.num_rows(), 2);
    let outs = unearth::table::strings(&table, &out.join("pairs.parquet"), "output_text").unwrap();
    assert_eq!(outs[1].as_deref(), records[1]["output_text"].as_str());

    // Hugging Face datasets loads each format as its users will (offline, cache in the test's
    // folder).
    let script = r#"
import json, sys
import datasets
out = sys.argv[1]
j = datasets.load_dataset("json", data_files=out + "/pairs.jsonl.gz", split="train")
p = datasets.load_dataset("parquet", data_files=out + "/pairs.parquet", split="train")
c = datasets.load_dataset("json", data_files=out + "/chat.jsonl.gz", split="train")
print(json.dumps({
    "json": [j.num_rows, j[1]["output_text"], j[0]["to_version"]],
    "parquet": [p.num_rows, p[1]["output_text"], p[0]["to_version"]],
    "chat": [c.num_rows, [m["role"] for m in c[0]["messages"]]],
}))
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .env("HF_DATASETS_CACHE", tmp.path().join("hf-cache"))
        .env("HF_HOME", tmp.path().join("hf-home"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .output()
        .expect("python3 runs (scripts/setup.sh installs datasets)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let loaded: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    for format in ["json", "parquet"] {
        assert_eq!(loaded[format][0], 2, "{loaded}");
        assert_eq!(loaded[format][1], records[1]["output_text"], "{format}");
        assert_eq!(loaded[format][2], "v0.9.0");
    }
    assert_eq!(loaded["chat"][0], 2);
    assert_eq!(
        loaded["chat"][1],
        serde_json::json!(["system", "user", "assistant"])
    );

    // A second run replaces its own output; a folder unearth did not write is refused.
    unearth_ok(&["evolve"], &config);
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), b"mine").unwrap();
    let o = unearth_with(
        &[
            "evolve",
            "--set",
            &format!("evolve.out={}", foreign.display()),
        ],
        &config,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an evolve output"));
    assert_eq!(std::fs::read(foreign.join("keep.txt")).unwrap(), b"mine");
}

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checkpoints: slices run their batches only, the merge refuses while a batch is missing, a
/// rerun runs only what is missing and gives the output of a run in one go, a current output
/// is left alone, a changed configuration is redone, and a damaged part is refused by name.
#[test]
fn evolve_resumes_from_its_batches_and_merges_slices() {
    let tmp = tempdir();
    let (_, config, out) = setup(tmp.path(), "batch_repos = 1\nslices = 2\n");
    // The reference: one run, one batch, elsewhere.
    let reference = tmp.path().join("reference");
    unearth_ok(
        &[
            "evolve",
            "--set",
            "evolve.batch_repos=64",
            "--set",
            &format!("evolve.out={}", reference.display()),
        ],
        &config,
    );
    let want = read_jsonl_gz(&reference.join("pairs.jsonl.gz"));
    assert_eq!(want.len(), 2);

    let o = unearth_ok(&["evolve", "--slice", "0/2"], &config);
    assert!(
        stdout_of(&o).contains("slice done, 2 pairs from 1 repositories"),
        "{}",
        stdout_of(&o)
    );
    assert!(!out.exists(), "a slice does not merge");
    let o = unearth_with(&["evolve", "--merge"], &config);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("batches 1 of 2 are not done")
            && stderr_of(&o).contains("slices 1/2"),
        "{}",
        stderr_of(&o)
    );
    let o = unearth_with(&["evolve", "--slice", "0/3"], &config);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("slices = 2"), "{}", stderr_of(&o));

    // The rerun runs the missing batch only, and the output is the one-go run's.
    let o = unearth_ok(&["evolve"], &config);
    assert!(
        stdout_of(&o).contains("1 of 2 batches run, 1 found done"),
        "{}",
        stdout_of(&o)
    );
    assert_eq!(read_jsonl_gz(&out.join("pairs.jsonl.gz")), want);
    let status: Vec<serde_json::Value> = std::fs::read_to_string(out.join("repos.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(status.len(), 2, "every repository asked for has a status");
    assert_eq!(status[0]["repo"], "t/proj");
    assert_eq!(status[0]["pairs"], 2);
    assert_eq!(status[1]["pairs"], 0);
    assert!(status[1]["notes"][0]
        .as_str()
        .unwrap()
        .contains("origin not found"));
    assert!(
        !tmp.path()
            .join("work/evolve-parts")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "the merged parts are removed"
    );

    // Current: nothing is redone or rewritten.
    let manifest = out.join("manifest.json");
    let before = std::fs::metadata(&manifest).unwrap().modified().unwrap();
    let o = unearth_ok(&["evolve"], &config);
    assert!(stdout_of(&o).contains("is current"), "{}", stdout_of(&o));
    assert_eq!(
        std::fs::metadata(&manifest).unwrap().modified().unwrap(),
        before
    );

    // A changed configuration is another run: redone in full.
    let o = unearth_ok(&["evolve", "--set", "evolve.max_versions=2"], &config);
    assert!(
        stdout_of(&o).contains("1 pairs from 1 of 2 repositories"),
        "{}",
        stdout_of(&o)
    );
    assert!(
        stdout_of(&o).contains("2 of 2 batches run"),
        "{}",
        stdout_of(&o)
    );

    // A part damaged after it was written is refused by name when merged; the output in
    // place stays.
    let set = ["--set", "evolve.max_versions=3"];
    unearth_ok(&["evolve", "--slice", "0/2", set[0], set[1]], &config);
    let parts: Vec<PathBuf> = tmp
        .path()
        .join("work/evolve-parts")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(parts.len(), 1);
    let damaged = parts[0].join("batch-000000/pairs.jsonl.gz");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    let o = unearth_with(&["evolve", set[0], set[1]], &config);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains(&damaged.display().to_string())
            && stderr_of(&o).contains("part.json records"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(
        read_jsonl_gz(&out.join("pairs.jsonl.gz")).len(),
        1,
        "the output in place is kept"
    );
}
