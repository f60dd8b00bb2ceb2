//! The demo archive: synthetic git repositories from a fixed seed, their SWH archive, and
//! Nemotron-style metadata with the answer expected for every row.
//!
//! The repositories hold the cases that make resolution hard: forks sharing history, merges,
//! lightweight and annotated tags, renames, deep paths, one file in several repositories,
//! names with spaces, Unicode and non-UTF-8 bytes, symlinks, executables, a submodule, an empty
//! file, a file over the size cap, a slug reused by an unrelated repository, GitHub pull refs,
//! and a repository with a missing blob. The expected answers come from the generator's own
//! model of each commit's files, independently of the archive.
//!
//! Layout of the output folder, besides the archive itself (see [`super`]):
//! `repos/<name>.git` (bare repositories), `metadata/part_0.parquet` (`repo`, `commit_id`,
//! `rel_path`, all Utf8) and `metadata/expected.parquet` (one row per metadata row).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use gix::ObjectId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gitwrite::{file, Files, Node, RepoWriter};
use super::{build_into, ArchiveError, BuildOptions, Manifest, RepoSpec, Staging};
use crate::model::hashes::{git_object_id, hex};

/// Seed of the demo's random file contents.
pub const SEED: u64 = 20_261_121;

/// Size cap of the demo archive: `beta/assets/big.bin` is above it.
pub const MAX_CONTENT_SIZE: u64 = 64 * 1024;

/// Name of the demo's run configuration, at the top of the demo folder.
pub const CONFIG: &str = "unearth.toml";

/// The demo's run configuration: paths are relative to the demo folder.
const DEMO_CONFIG: &str = "# unearth run --config <demo>/unearth.toml\n\
graph = \"graph/graph\"\n\
metadata = \"metadata/part_0.parquet\"\n\
workdir = \"work\"\n\
orc = \"orc\"\n\
digestmap = \"digestmap\"\n\
\n\
[options]\n\
url_templates = [\"https://github.com/{slug}\"]\n\
\n\
[fetch]\n\
store = \"file://objects/content\"\n\
\n\
# unearth evolve --config <demo>/unearth.toml\n\
[evolve]\n\
repos = [{ name = \"demo-org/alpha\" }, { name = \"demo-org/beta\" }]\n";

/// Stamp identifying this demo in the manifest: a rerun with the same stamp is a no-op.
pub fn stamp() -> String {
    format!("unearth demo v5 seed {SEED}")
}

/// What the generator knows about one archived commit.
#[derive(Debug, Clone)]
struct KnownCommit {
    id: ObjectId,
    files: Files,
}

/// One metadata row and its expected answer.
#[derive(Debug, Clone)]
struct Row {
    repo: String,
    commit_id: String,
    rel_path: String,
    status: &'static str,
    revision: Option<String>,
    sha1_git: Option<String>,
    case: &'static str,
}

/// Expected resolution of `path` in `files`, as the path walk must report it.
fn resolve(files: &Files, path: &str) -> (&'static str, Option<String>) {
    let path = path.as_bytes();
    if let Some(node) = files.get(path) {
        return match node {
            Node::File { data, .. } => ("ok", Some(hex(&git_object_id("blob", data)))),
            Node::Link(target) => ("symlink", Some(hex(&git_object_id("blob", target)))),
            Node::Gitlink(_) => ("submodule", None),
        };
    }
    // A proper prefix that is a gitlink or a file stops the walk.
    for (i, _) in path.iter().enumerate().filter(|(_, &b)| b == b'/') {
        match files.get(&path[..i]) {
            Some(Node::Gitlink(_)) => return ("submodule", None),
            Some(_) => return ("path_not_found", None),
            None => {}
        }
    }
    let mut dir = path.to_vec();
    dir.push(b'/');
    if files
        .range(dir.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&dir))
    {
        return ("is_directory", None);
    }
    ("path_not_found", None)
}

fn random_source(rng: &mut ChaCha8Rng, lines: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "let", "value", "count", "return", "if", "else", "for", "item", "in", "data", "print",
        "result", "self", "node", "graph", "path", "name", "open", "read", "write",
    ];
    let mut out = String::new();
    for i in 0..lines {
        let n = rng.random_range(2..10);
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        out.push_str(&format!(
            "{}{} = {}\n",
            "    ".repeat(i % 3),
            words.join("_"),
            rng.random::<u32>()
        ));
    }
    out.into_bytes()
}

const LICENSE: &[u8] =
    b"Permission is hereby granted, free of charge, to any person obtaining a copy.\n";

/// The generated repositories, their visits, and the metadata rows.
struct Demo {
    specs: Vec<RepoSpec>,
    rows: Vec<Row>,
}

fn slug_row(repo: &str, commit: &KnownCommit, path: &str, case: &'static str) -> Row {
    let (status, sha1_git) = resolve(&commit.files, path);
    Row {
        repo: repo.to_string(),
        commit_id: commit.id.to_hex().to_string()[..7].to_string(),
        rel_path: path.to_string(),
        status,
        revision: Some(commit.id.to_hex().to_string()),
        sha1_git,
        case,
    }
}

fn failing_row(
    repo: &str,
    commit_id: &str,
    path: &str,
    status: &'static str,
    case: &'static str,
) -> Row {
    Row {
        repo: repo.to_string(),
        commit_id: commit_id.to_string(),
        rel_path: path.to_string(),
        status,
        revision: None,
        sha1_git: None,
        case,
    }
}

fn generate(repos_dir: &Path) -> Result<Demo, ArchiveError> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let path_of = |name: &str| repos_dir.join(format!("{name}.git"));
    let t0 = 1_500_000_000; // 2017-07-14

    // gamma: a small library, the submodule of beta.
    let mut gamma = RepoWriter::create(&path_of("gamma"), t0)?;
    let mut g_files = Files::new();
    g_files.insert(b"README.md".to_vec(), file("# gamma\n"));
    g_files.insert(b"src/lib.rs".to_vec(), file(random_source(&mut rng, 12)));
    let g1 = gamma.commit(&g_files, &[], "gamma: initial")?;
    gamma.set_ref("refs/heads/main", g1)?;
    gamma.set_head("refs/heads/main")?;
    let gamma_head = KnownCommit {
        id: g1,
        files: g_files,
    };

    // alpha: the main project.
    let mut alpha = RepoWriter::create(&path_of("alpha"), t0 + 86_400)?;
    let mut a = Files::new();
    a.insert(b"README.md".to_vec(), file("# alpha\n\nA demo project.\n"));
    a.insert(b"LICENSE".to_vec(), file(LICENSE));
    a.insert(b"src/main.py".to_vec(), file(random_source(&mut rng, 30)));
    a.insert(b"docs/user guide.md".to_vec(), file("How to use alpha.\n"));
    a.insert(
        "naïve café.py".as_bytes().to_vec(),
        file("print('unicode')\n"),
    );
    a.insert(
        "données/日本語.txt".as_bytes().to_vec(),
        file("こんにちは\n"),
    );
    a.insert(
        b"latin1-\xe9t\xe9.txt".to_vec(),
        file("not UTF-8 in its name\n"),
    );
    a.insert(b"empty.txt".to_vec(), file(""));
    a.insert(
        b"scripts/run.sh".to_vec(),
        Node::File {
            data: b"#!/bin/sh\nexec python3 src/main.py\n".to_vec(),
            exec: true,
        },
    );
    a.insert(
        b"link-to-readme".to_vec(),
        Node::Link(b"README.md".to_vec()),
    );
    a.insert(b"a/b/c/d/e/f/g/h/deep.txt".to_vec(), file("deep\n"));
    for i in 0..12 {
        let lines = rng.random_range(5..60);
        a.insert(
            format!("src/gen/module_{i:02}.py").into_bytes(),
            file(random_source(&mut rng, lines)),
        );
    }
    let c1 = alpha.commit(&a, &[], "Initial import")?;
    let a1 = a.clone();

    let mut a2 = a1.clone();
    a2.insert(b"src/main.py".to_vec(), file(random_source(&mut rng, 35)));
    a2.insert(
        b"src/util.py".to_vec(),
        file("def helper():\n    return 42\n"),
    );
    let c2 = alpha.commit(&a2, &[c1], "Add util")?;

    let mut a3 = a1.clone();
    a3.insert(b"feature.py".to_vec(), file("FEATURE = True\n"));
    let c3 = alpha.commit(&a3, &[c1], "Add feature")?;

    let mut a4 = a2.clone();
    a4.insert(b"feature.py".to_vec(), file("FEATURE = True\n"));
    let c4 = alpha.commit(&a4, &[c2, c3], "Merge branch 'feature'")?;

    let mut a5 = a4.clone();
    let util = a5.remove(b"src/util.py".as_slice()).expect("util exists");
    a5.insert(b"src/helpers.py".to_vec(), util);
    let c5 = alpha.commit(&a5, &[c4], "Rename util to helpers")?;

    // A merge ref GitHub synthesises: SWH's loader drops it, so this commit is not archived.
    let mut pr = a5.clone();
    pr.insert(b"pr-only.txt".to_vec(), file("only in refs/pull/1/merge\n"));
    let c_pr_merge = alpha.commit(&pr, &[c5, c3], "Merge pull request #1")?;

    let v1 = alpha.tag("v1.0", c4, "Release 1.0")?;
    alpha.set_ref("refs/heads/main", c5)?;
    alpha.set_ref("refs/heads/feature", c3)?;
    alpha.set_ref("refs/tags/v0.1", c2)?;
    alpha.set_ref("refs/tags/v1.0", v1)?;
    alpha.set_ref("refs/pull/1/head", c3)?;
    alpha.set_ref("refs/pull/1/merge", c_pr_merge)?;
    alpha.set_head("refs/heads/main")?;
    let k = |id, files: &Files| KnownCommit {
        id,
        files: files.clone(),
    };
    let (k1, k3, k4, k5) = (k(c1, &a1), k(c3, &a3), k(c4, &a4), k(c5, &a5));

    // alpha-fork: the same history replayed (same bytes, same ids) plus a commit of its own.
    let mut fork = RepoWriter::create(&path_of("alpha-fork"), t0 + 86_400)?;
    let f1 = fork.commit(&a1, &[], "Initial import")?;
    let f2 = fork.commit(&a2, &[f1], "Add util")?;
    let f3 = fork.commit(&a3, &[f1], "Add feature")?;
    let f4 = fork.commit(&a4, &[f2, f3], "Merge branch 'feature'")?;
    let f5 = fork.commit(&a5, &[f4], "Rename util to helpers")?;
    debug_assert_eq!((f1, f5), (c1, c5));
    let mut a6 = a5.clone();
    a6.insert(b"fork-only.py".to_vec(), file("FORK = 1\n"));
    fork.clock += 86_400 * 30;
    let c6 = fork.commit(&a6, &[f5], "Fork: add fork-only")?;
    fork.set_ref("refs/heads/main", c6)?;
    fork.set_head("refs/heads/main")?;
    let k6 = k(c6, &a6);

    // beta: shares LICENSE with alpha, has a submodule, a blob over the cap, a detached HEAD.
    let mut beta = RepoWriter::create(&path_of("beta"), t0 + 2 * 86_400)?;
    let mut b = Files::new();
    b.insert(b"LICENSE".to_vec(), file(LICENSE));
    b.insert(b"README.md".to_vec(), file("# beta\n"));
    b.insert(
        b".gitmodules".to_vec(),
        file("[submodule \"vendor/gamma\"]\n\tpath = vendor/gamma\n\turl = https://github.com/demo-org/gamma\n"),
    );
    b.insert(b"vendor/gamma".to_vec(), Node::Gitlink(g1));
    let big: Vec<u8> = (0..MAX_CONTENT_SIZE + 36 * 1024)
        .map(|_| rng.random::<u8>())
        .collect();
    b.insert(b"assets/big.bin".to_vec(), file(big));
    b.insert(b"build/config.toml".to_vec(), file("[build]\nopt = 3\n"));
    for i in 0..6 {
        b.insert(
            format!("lib/part_{i}.rs").into_bytes(),
            file(random_source(&mut rng, 20)),
        );
    }
    let b1 = beta.commit(&b, &[], "beta: initial")?;
    beta.set_ref("refs/heads/main", b1)?;
    beta.set_head(&b1.to_hex().to_string())?;
    let kb = k(b1, &b);

    // reused slug: two unrelated repositories archived under one URL, years apart.
    let mut old = RepoWriter::create(&path_of("reused-old"), 1_400_000_000)?;
    let mut o = Files::new();
    o.insert(b"main.c".to_vec(), file("int main(void) { return 0; }\n"));
    let o1 = old.commit(&o, &[], "old project")?;
    old.set_ref("refs/heads/master", o1)?;
    old.set_head("refs/heads/master")?;
    let ko = k(o1, &o);
    let mut new = RepoWriter::create(&path_of("reused-new"), 1_650_000_000)?;
    let mut n = Files::new();
    n.insert(
        b"main.go".to_vec(),
        file("package main\n\nfunc main() {}\n"),
    );
    let n1 = new.commit(&n, &[], "new project, same name")?;
    new.set_ref("refs/heads/main", n1)?;
    new.set_head("refs/heads/main")?;
    let kn = k(n1, &n);

    // partial: a repository that lost one blob (as a partial clone would).
    let mut partial = RepoWriter::create(&path_of("partial"), t0 + 3 * 86_400)?;
    let mut p = Files::new();
    p.insert(b"kept.txt".to_vec(), file("still here\n"));
    p.insert(
        b"lost.txt".to_vec(),
        file("this blob is removed from the repository\n"),
    );
    let p1 = partial.commit(&p, &[], "partial: initial")?;
    partial.set_ref("refs/heads/main", p1)?;
    partial.set_head("refs/heads/main")?;
    let lost = hex(&git_object_id(
        "blob",
        b"this blob is removed from the repository\n",
    ));
    let loose = path_of("partial")
        .join("objects")
        .join(&lost[..2])
        .join(&lost[2..]);
    std::fs::remove_file(&loose).map_err(|e| ArchiveError::io(&loose, e))?;
    let kp = k(p1, &p);

    let day = 86_400;
    let visit = |url: &str, name: &str, time: i64| RepoSpec {
        url: url.to_string(),
        path: path_of(name),
        visit_time: Some(time),
    };
    let specs = vec![
        visit("https://github.com/demo-org/alpha", "alpha", 1_704_067_200),
        visit(
            "https://github.com/forker/alpha",
            "alpha-fork",
            1_704_067_200 + day,
        ),
        visit(
            "https://github.com/demo-org/beta",
            "beta",
            1_704_067_200 + 2 * day,
        ),
        visit(
            "https://github.com/demo-org/gamma",
            "gamma",
            1_704_067_200 + 2 * day,
        ),
        visit(
            "https://github.com/demo-org/reused",
            "reused-old",
            1_559_347_200,
        ),
        visit(
            "https://github.com/demo-org/reused",
            "reused-new",
            1_685_577_600,
        ),
        visit(
            "https://github.com/demo-org/partial",
            "partial",
            1_704_067_200 + 3 * day,
        ),
    ];

    let al = "demo-org/alpha";
    let mut rows = vec![
        slug_row(al, &k5, "README.md", "plain file at a branch head"),
        slug_row(
            al,
            &k5,
            "src/main.py",
            "file changed since the first commit",
        ),
        slug_row(al, &k1, "src/main.py", "older version of the same path"),
        slug_row(al, &k5, "src/helpers.py", "renamed file, new name"),
        slug_row(
            al,
            &k5,
            "src/util.py",
            "renamed file, old name at the new commit",
        ),
        slug_row(
            al,
            &k4,
            "src/util.py",
            "renamed file, old name at an annotated tag's commit",
        ),
        slug_row(
            al,
            &k3,
            "feature.py",
            "commit only on a branch and a pull head",
        ),
        slug_row(al, &k4, "feature.py", "merge commit"),
        slug_row(al, &k5, "docs/user guide.md", "name with a space"),
        slug_row(al, &k5, "naïve café.py", "Unicode name"),
        slug_row(al, &k5, "données/日本語.txt", "Unicode directory and name"),
        slug_row(al, &k5, "empty.txt", "empty file"),
        slug_row(al, &k5, "scripts/run.sh", "executable"),
        slug_row(
            al,
            &k5,
            "link-to-readme",
            "symlink: resolves to the link's own blob",
        ),
        slug_row(al, &k5, "a/b/c/d/e/f/g/h/deep.txt", "deep path"),
        slug_row(al, &k5, "src", "a directory named as a file"),
        slug_row(al, &k5, "README.md/extra", "walking through a file"),
        slug_row(al, &k5, "missing.txt", "path absent from the tree"),
        slug_row(al, &k5, "LICENSE", "same blob as in beta"),
        slug_row(
            "forker/alpha",
            &k5,
            "src/helpers.py",
            "fork: commit shared with the upstream",
        ),
        slug_row(
            "forker/alpha",
            &k6,
            "fork-only.py",
            "fork: commit of its own",
        ),
        slug_row("demo-org/beta", &kb, "LICENSE", "same blob as in alpha"),
        slug_row(
            "demo-org/beta",
            &kb,
            "assets/big.bin",
            "blob over the size cap (skipped_content)",
        ),
        slug_row("demo-org/beta", &kb, "vendor/gamma", "the submodule itself"),
        slug_row(
            "demo-org/beta",
            &kb,
            "vendor/gamma/src/lib.rs",
            "path through a submodule",
        ),
        slug_row("demo-org/beta", &kb, "build", "directory named as a file"),
        slug_row(
            "demo-org/beta",
            &kb,
            "build/config.toml",
            "detached HEAD commit",
        ),
        slug_row(
            "demo-org/gamma",
            &gamma_head,
            "src/lib.rs",
            "submodule's own origin",
        ),
        slug_row(
            "demo-org/reused",
            &ko,
            "main.c",
            "reused slug: first, older visit",
        ),
        slug_row(
            "demo-org/reused",
            &kn,
            "main.go",
            "reused slug: latest visit",
        ),
        slug_row(
            "demo-org/partial",
            &kp,
            "kept.txt",
            "repository with a missing blob: present one",
        ),
        slug_row(
            "demo-org/partial",
            &kp,
            "lost.txt",
            "missing blob: named by the tree, not archived",
        ),
    ];
    for (i, path) in [
        "src/gen/module_00.py",
        "src/gen/module_07.py",
        "src/gen/module_11.py",
    ]
    .iter()
    .enumerate()
    {
        let commit = [&k1, &k4, &k5][i];
        rows.push(slug_row(al, commit, path, "generated module"));
    }
    let c6_prefix = c6.to_hex().to_string()[..7].to_string();
    let pr_prefix = c_pr_merge.to_hex().to_string()[..7].to_string();
    let all_ids: Vec<String> = [g1, c1, c2, c3, c4, c5, c6, c_pr_merge, b1, o1, n1, p1]
        .iter()
        .map(|id| id.to_hex().to_string())
        .collect();
    let absent = (0..u32::MAX)
        .map(|i| format!("{i:07x}"))
        .find(|p| !all_ids.iter().any(|id| id.starts_with(p.as_str())))
        .expect("some prefix is free");
    rows.extend([
        failing_row(
            "nobody/nothing",
            &all_ids[5][..7],
            "README.md",
            "origin_not_found",
            "no such origin",
        ),
        failing_row(
            al,
            &absent,
            "README.md",
            "commit_not_found",
            "no revision has this prefix",
        ),
        failing_row(
            al,
            &c6_prefix,
            "fork-only.py",
            "commit_not_in_origin",
            "commit exists only in the fork",
        ),
        failing_row(
            al,
            &pr_prefix,
            "pr-only.txt",
            "commit_not_found",
            "commit of refs/pull/1/merge, not archived",
        ),
        failing_row(
            "demo-org/gamma",
            &kb.id.to_hex().to_string()[..7],
            "LICENSE",
            "commit_not_in_origin",
            "commit of another origin",
        ),
        failing_row(
            al,
            "xyz1234",
            "README.md",
            "invalid",
            "commit_id is not hex",
        ),
        failing_row(
            al,
            "abc",
            "README.md",
            "invalid",
            "commit_id shorter than 4 digits",
        ),
        failing_row(
            al,
            &all_ids[5][..7],
            "/etc/passwd",
            "invalid",
            "absolute path",
        ),
        failing_row(
            al,
            &all_ids[5][..7],
            "src/../README.md",
            "invalid",
            "path with ..",
        ),
        failing_row(al, &all_ids[5][..7], "", "invalid", "empty path"),
    ]);
    let mut upper = slug_row(al, &k5, "README.md", "commit_id in upper case");
    upper.commit_id = upper.commit_id.to_uppercase();
    rows.push(upper);
    Ok(Demo { specs, rows })
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) -> Result<(), ArchiveError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| ArchiveError::Other(e.to_string()))?;
    let file = std::fs::File::create(path).map_err(|e| ArchiveError::io(path, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)
        .map_err(|e| ArchiveError::Other(format!("{}: {e}", path.display())))?;
    w.write(&batch)
        .and_then(|_| w.close().map(|_| ()))
        .map_err(|e| ArchiveError::Other(format!("{}: {e}", path.display())))
}

fn strings<'a>(rows: &'a [Row], f: impl Fn(&'a Row) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

fn write_metadata(dir: &Path, rows: &[Row]) -> Result<(), ArchiveError> {
    std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
    write_parquet(
        &dir.join("part_0.parquet"),
        vec![
            ("repo", strings(rows, |r| Some(&r.repo))),
            ("commit_id", strings(rows, |r| Some(&r.commit_id))),
            ("rel_path", strings(rows, |r| Some(&r.rel_path))),
        ],
    )?;
    write_parquet(
        &dir.join("expected.parquet"),
        vec![
            (
                "row",
                Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)) as ArrayRef,
            ),
            ("repo", strings(rows, |r| Some(&r.repo))),
            ("commit_id", strings(rows, |r| Some(&r.commit_id))),
            ("rel_path", strings(rows, |r| Some(&r.rel_path))),
            ("expected_status", strings(rows, |r| Some(r.status))),
            (
                "expected_revision",
                strings(rows, |r| r.revision.as_deref()),
            ),
            (
                "expected_sha1_git",
                strings(rows, |r| r.sha1_git.as_deref()),
            ),
            ("case", strings(rows, |r| Some(r.case))),
        ],
    )
}

/// Outcome of [`build_demo`].
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// False when a complete demo archive was already there and nothing was done.
    pub built: bool,
}

/// Builds the demo archive into `out`, or does nothing when `out` already holds this demo.
pub fn build_demo(out: &Path) -> Result<DemoOutcome, ArchiveError> {
    match super::existing_archive(out)? {
        Some(manifest)
            if manifest.note == stamp() && manifest.format_version == super::FORMAT_VERSION =>
        {
            return Ok(DemoOutcome {
                manifest,
                built: false,
            });
        }
        Some(_) => {
            return Err(ArchiveError::Output {
                path: out.to_owned(),
                reason: "it holds another archive than this version's demo; choose a new or \
                         empty folder"
                    .into(),
            })
        }
        None => {}
    }
    let staging = Staging::new(out)?;
    let root = staging.path().to_owned();
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).map_err(|e| ArchiveError::io(&repos, e))?;
    let demo = generate(&repos)?;
    let opts = BuildOptions {
        repos: demo.specs,
        max_content_size: MAX_CONTENT_SIZE,
        rows_per_file: 100_000,
    };
    let mut manifest = build_into(&root, &opts, &stamp())?;
    // Record repository paths relative to the archive, which is where they will live.
    for v in &mut manifest.visits {
        if let Ok(rel) = v.path.strip_prefix(&root) {
            v.path = PathBuf::from(rel);
        }
    }
    write_metadata(&root.join("metadata"), &demo.rows)?;
    let config = root.join(CONFIG);
    std::fs::write(&config, DEMO_CONFIG).map_err(|e| ArchiveError::io(&config, e))?;
    super::write_manifest(&root, &manifest)?;
    staging.commit()?;
    Ok(DemoOutcome {
        manifest,
        built: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_resolution_of_the_model() {
        let mut f = Files::new();
        f.insert(b"a/b.txt".to_vec(), file("x"));
        f.insert(b"l".to_vec(), Node::Link(b"a/b.txt".to_vec()));
        f.insert(
            b"sub".to_vec(),
            Node::Gitlink(ObjectId::null(gix::hash::Kind::Sha1)),
        );
        assert_eq!(resolve(&f, "a/b.txt").0, "ok");
        assert_eq!(resolve(&f, "a").0, "is_directory");
        assert_eq!(resolve(&f, "l").0, "symlink");
        assert_eq!(resolve(&f, "sub").0, "submodule");
        assert_eq!(resolve(&f, "sub/x/y").0, "submodule");
        assert_eq!(resolve(&f, "a/b.txt/c").0, "path_not_found");
        assert_eq!(resolve(&f, "zzz").0, "path_not_found");
        assert_eq!(resolve(&f, "a/b").0, "path_not_found");
    }
}
