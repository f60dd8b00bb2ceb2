//! The resolution pipeline against git: every resolvable row's content id must equal
//! `git rev-parse <commit>:<path>`, every other row must carry the right status.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use common::*;
use unearth::archive::{self, BuildOptions, RepoSpec};
use unearth::config::Config;
use unearth::pipeline::Pipeline;

/// A row of the resolved output.
#[derive(Debug, Clone)]
struct Resolved {
    repo: String,
    commit_id: String,
    rel_path: String,
    status: String,
    revision: Option<String>,
    sha1_git: Option<String>,
    origin_url: Option<String>,
}

fn read_resolved(workdir: &Path) -> Vec<Resolved> {
    let dir = workdir.join("walk");
    let files = parquet_files(&dir);
    let mut out = Vec::new();
    for f in files {
        let b = unearth::table::read(&f).unwrap();
        let s = |n: &str| unearth::table::strings(&b, &f, n).unwrap();
        let (repo, commit, path, status, rev, sha, url) = (
            s("repo"),
            s("commit_id"),
            s("rel_path"),
            s("status"),
            s("revision"),
            s("sha1_git"),
            s("origin_url"),
        );
        for i in 0..b.num_rows() {
            out.push(Resolved {
                repo: repo[i].clone().unwrap_or_default(),
                commit_id: commit[i].clone().unwrap_or_default(),
                rel_path: path[i].clone().unwrap_or_default(),
                status: status[i].clone().unwrap(),
                revision: rev[i].clone(),
                sha1_git: sha[i].clone(),
                origin_url: url[i].clone(),
            });
        }
    }
    out
}

/// The `candidates_with_path` column of the resolved output.
fn candidates_with_path(workdir: &Path) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    for f in parquet_files(&workdir.join("walk")) {
        let b = unearth::table::read(&f).unwrap();
        let col = b.column_by_name("candidates_with_path").expect("column");
        let col = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt32Type>(col);
        out.extend(col.iter());
    }
    out
}

fn write_metadata(path: &Path, rows: &[(&str, &str, &str)]) {
    unearth::table::write(
        path,
        vec![
            (
                "repo",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            ),
            (
                "commit_id",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ),
            (
                "rel_path",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ),
            (
                "score",
                Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)),
            ),
        ],
    )
    .unwrap();
}

fn write_config(dir: &Path, graph: &Path, metadata: &Path, extra: &str) -> PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            "graph = {:?}\nmetadata = {:?}\nworkdir = {:?}\n\n[options]\n{extra}\n",
            graph.display().to_string(),
            metadata.display().to_string(),
            dir.join("work").display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Runs every phase of `config`, then checks that the other label strategy resolves every
/// row the same.
fn run(config: &Path) -> Vec<unearth::pipeline::PhaseOutcome> {
    let cfg = Config::load(config).unwrap();
    let outcomes = Pipeline::open(cfg.clone()).unwrap().run_all().unwrap();
    strategies_agree(&cfg);
    if cfg.joins_contents() {
        let [orc, map] = joins_agree(&cfg);
        assert!(orc["orc_rows_read"].as_u64().unwrap() > 0, "{orc}");
        assert!(map["lookups"].as_u64().unwrap() > 0, "{map}");
        assert_eq!(map["orc_rows_read"].as_u64().unwrap(), 0, "{map}");
    }
    outcomes
}

/// `git rev-parse commit:path`, or None.
/// Builds an archive at `dir` from `(origin URL, repository, visit time)`, one visit each.
fn build_archive(dir: &Path, repos: &[(&str, &Path, Option<&str>)], rows_per_file: u64) {
    let repos = repos
        .iter()
        .map(|(url, p, time)| {
            let at = time.map(|t| format!("@{t}")).unwrap_or_default();
            RepoSpec::parse(&format!("{url}={}{at}", p.display())).unwrap()
        })
        .collect();
    archive::build(
        dir,
        &BuildOptions {
            repos,
            max_content_size: 1 << 20,
            rows_per_file,
        },
        "",
    )
    .unwrap();
}

fn rev_parse(repo: &Path, spec: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "-q", "--verify", spec])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

fn commit_tree(repo: &Path, files: &[(&[u8], &[u8])], parent: Option<&str>, msg: &str) -> String {
    // Builds the index from scratch with plumbing, so names can be any bytes.
    let index = repo.join(".git/test-index");
    let _ = std::fs::remove_file(&index);
    for (name, data) in files {
        let blob_file = repo.join(".git/test-blob");
        std::fs::write(&blob_file, data).unwrap();
        let blob = git_lines(repo, &["hash-object", "-w", blob_file.to_str().unwrap()])[0].clone();
        let mut info = std::ffi::OsString::from(format!("100644,{blob},"));
        info.push(OsStr::from_bytes(name));
        let st = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .env("GIT_INDEX_FILE", &index)
            .args([
                OsStr::new("update-index"),
                OsStr::new("--add"),
                OsStr::new("--cacheinfo"),
                &info,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let tree = String::from_utf8(
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .env("GIT_INDEX_FILE", &index)
            .arg("write-tree")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let mut args = vec!["commit-tree".to_string(), tree, "-m".into(), msg.into()];
    if let Some(p) = parent {
        args.extend(["-p".into(), p.into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(&args)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("GIT_AUTHOR_DATE", "2021-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2021-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn demo_rows_resolve_as_expected_and_verify_agrees() {
    let tmp = tempdir();
    let out = tmp.path().join("demo");
    archive::demo::build_demo(&out).unwrap();
    let config = out.join(archive::demo::CONFIG);
    run(&config);
    let rows = read_resolved(&out.join("work"));
    let exp = unearth::table::read(&out.join("metadata/expected.parquet")).unwrap();
    let ep = out.join("metadata/expected.parquet");
    let status = unearth::table::strings(&exp, &ep, "expected_status").unwrap();
    let sha = unearth::table::strings(&exp, &ep, "expected_sha1_git").unwrap();
    let rev = unearth::table::strings(&exp, &ep, "expected_revision").unwrap();
    assert_eq!(rows.len(), exp.num_rows(), "every input row appears once");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(Some(&r.status), status[i].as_ref(), "row {i}: {r:?}");
        if sha[i].is_some() {
            assert_eq!(r.sha1_git, sha[i], "row {i}");
        }
        if rev[i].is_some() && r.status != "invalid" {
            assert_eq!(r.revision, rev[i], "row {i}");
        }
    }
    let o = unearth()
        .args(["verify", "--sample", "1000", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("disagreed 0"), "{text}");
}

/// A repository whose linear history holds two commits sharing a 4-hex prefix, each with a
/// file of its own; returns (repo, [(commit, own file)] of the colliding pair, all commits).
fn colliding_repo(dir: &Path) -> (PathBuf, [(String, String); 2], Vec<String>) {
    let repo = dir.join("collide");
    init_repo(&repo);
    let mut commits: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut parent: Option<String> = None;
    for i in 0..5000 {
        let name = format!("n-{i}.txt");
        let c = commit_tree(
            &repo,
            &[
                (name.as_bytes(), format!("{i}\n").as_bytes()),
                (b"common.txt", b"same\n"),
            ],
            parent.as_deref(),
            &format!("commit {i}"),
        );
        commits.push(c.clone());
        if let Some(&j) = seen.get(&c[..4]) {
            git(&repo, &["update-ref", "refs/heads/main", &c]);
            let pair = [(commits[j].clone(), format!("n-{j}.txt")), (c, name)];
            return (repo, pair, commits);
        }
        seen.insert(c[..4].to_string(), i);
        parent = Some(c);
    }
    panic!("no 4-hex collision in 5000 commits");
}

#[test]
fn git_built_archive_resolves_like_git() {
    let tmp = tempdir();
    let t = tmp.path();
    let (collide, pair, history) = colliding_repo(t);
    let prefix = &pair[0].0[..4];

    // A fork of collide with a commit of its own.
    let fork = t.join("fork");
    git(
        t,
        &[
            "clone",
            "-q",
            collide.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    let fork_head = commit_tree(
        &fork,
        &[(b"fork.txt", b"fork\n")],
        Some(history.last().unwrap()),
        "fork",
    );
    git(&fork, &["update-ref", "refs/heads/main", &fork_head]);

    // A repository with a submodule, a directory, a symlink, Unicode and non-UTF-8 names.
    let rich = t.join("rich");
    init_repo(&rich);
    std::fs::create_dir_all(rich.join("src/deep")).unwrap();
    std::fs::write(rich.join("src/deep/a.rs"), "fn a() {}\n").unwrap();
    std::fs::write(rich.join("café.md"), "unicode\n").unwrap();
    std::fs::write(rich.join("blob.bin"), [0xffu8, 0xfe, 0x00, 0x01, 0x80]).unwrap();
    std::fs::write(
        rich.join(OsStr::from_bytes(b"raw-\xff.bin")),
        "not utf-8 name\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("src/deep/a.rs", rich.join("link")).unwrap();
    git(&rich, &["add", "-A"]);
    git(
        &rich,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{},vendor/sub", pair[0].0),
        ],
    );
    git(&rich, &["commit", "-q", "-m", "rich"]);
    let rich_head = git_lines(&rich, &["rev-parse", "HEAD"])[0].clone();

    // Two unrelated repositories under one slug, visited years apart.
    let old = t.join("old");
    init_repo(&old);
    std::fs::write(old.join("old.txt"), "old\n").unwrap();
    git(&old, &["add", "-A"]);
    git(&old, &["commit", "-q", "-m", "old"]);
    let old_head = git_lines(&old, &["rev-parse", "HEAD"])[0].clone();
    let new = t.join("new");
    init_repo(&new);
    std::fs::write(new.join("new.txt"), "new\n").unwrap();
    git(&new, &["add", "-A"]);
    git(&new, &["commit", "-q", "-m", "new"]);

    let archive_dir = t.join("archive");
    build_archive(
        &archive_dir,
        &[
            ("https://github.com/t/collide", &collide, Some("2022-01-01")),
            ("https://github.com/u/fork", &fork, Some("2022-02-01")),
            ("https://github.com/t/rich", &rich, Some("2022-03-01")),
            ("https://github.com/t/reused", &old, Some("2015-01-01")),
            ("https://github.com/t/reused", &new, Some("2023-01-01")),
        ],
        1000,
    );

    let deep = &history[history.len() / 2];
    let rows: Vec<(&str, String, String)> = vec![
        // Colliding prefix: each row goes to the commit whose tree holds its path (the slug's
        // spellings differ but name one repository, so this is one pair).
        ("t/collide", prefix.to_string(), pair[0].1.clone()),
        ("T/Collide", prefix.to_string(), pair[1].1.clone()),
        (
            "t/collide",
            history[0][..7].to_string(),
            "common.txt".into(),
        ),
        ("T/Collide", deep[..10].to_string(), "common.txt".into()),
        // Fork shares history; its own commit is not in the upstream.
        ("u/fork", deep[..7].to_string(), "common.txt".into()),
        ("u/fork", fork_head[..7].to_string(), "fork.txt".into()),
        ("t/collide", fork_head[..7].to_string(), "fork.txt".into()),
        // Submodule, directory, symlink, Unicode, non-UTF-8 sibling.
        ("t/rich", rich_head[..7].to_string(), "vendor/sub".into()),
        (
            "t/rich",
            rich_head[..7].to_string(),
            "vendor/sub/common.txt".into(),
        ),
        ("t/rich", rich_head[..7].to_string(), "src".into()),
        ("t/rich", rich_head[..7].to_string(), "src/deep/a.rs".into()),
        ("t/rich", rich_head[..7].to_string(), "link".into()),
        ("t/rich", rich_head[..7].to_string(), "café.md".into()),
        ("t/rich", rich_head[..7].to_string(), "blob.bin".into()),
        (
            "t/rich",
            rich_head[..7].to_string(),
            "src/deep/a.rs/x".into(),
        ),
        ("t/rich", rich_head[..7].to_string(), "nope".into()),
        // Reused slug: the older repository's commit is still found.
        ("t/reused", old_head[..7].to_string(), "old.txt".into()),
        ("t/nobody", old_head[..7].to_string(), "old.txt".into()),
        ("t/rich", "ffff0000".into(), "x".into()),
        // Both colliding commits hold it: the rank decides (the branch head).
        ("t/collide", prefix.to_string(), "common.txt".into()),
        ("t/collide", prefix.to_string(), pair[0].1.clone()),
    ];
    let meta = t.join("meta.parquet");
    let as_refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(a, b, c)| (*a, b.as_str(), c.as_str()))
        .collect();
    write_metadata(&meta, &as_refs);
    let config = write_config(
        t,
        &archive::ArchiveDir::new(&archive_dir).graph(),
        &meta,
        "",
    );
    run(&config);
    let got = read_resolved(&t.join("work"));
    assert_eq!(got.len(), rows.len());

    let repo_of = |slug: &str| -> PathBuf {
        match slug {
            "t/collide" | "T/Collide" => collide.clone(),
            "u/fork" => fork.clone(),
            "t/rich" => rich.clone(),
            "t/reused" => old.clone(),
            _ => t.join("none"),
        }
    };
    let expect = [
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "commit_not_in_origin",
        "submodule",
        "submodule",
        "is_directory",
        "ok",
        "symlink",
        "ok",
        "ok",
        "path_not_found",
        "path_not_found",
        "ok",
        "origin_not_found",
        "commit_not_found",
        "ok",
        "ok",
    ];
    for (i, (r, want)) in got.iter().zip(expect).enumerate() {
        assert_eq!(r.status, want, "row {i}: {r:?}");
        if matches!(want, "ok" | "symlink") {
            let rev = r.revision.as_ref().expect("revision");
            assert!(rev.starts_with(&r.commit_id.to_lowercase()), "row {i}");
            let expected = rev_parse(&repo_of(&r.repo), &format!("{rev}:{}", r.rel_path));
            assert_eq!(r.sha1_git, expected, "row {i}: {r:?}");
        }
    }
    // The colliding prefix went to the commit whose tree has the path, each time.
    assert_eq!(got[0].revision.as_deref(), Some(pair[0].0.as_str()));
    assert_eq!(got[1].revision.as_deref(), Some(pair[1].0.as_str()));
    assert_eq!(got[19].revision.as_deref(), Some(pair[1].0.as_str()));
    assert_eq!(got[20].revision.as_deref(), Some(pair[0].0.as_str()));
    let held = candidates_with_path(&t.join("work"));
    assert_eq!(
        [held[0], held[1], held[19], held[20], held[2]],
        [Some(1), Some(1), Some(2), Some(1), Some(1)],
        "how many colliding commits hold each row's path"
    );
    assert_eq!(held[17], None, "no candidates for a missing origin");
    assert_eq!(
        got[3].origin_url.as_deref(),
        Some("https://github.com/t/collide")
    );
    let m = Pipeline::open(Config::load(&config).unwrap()).unwrap();
    let matched = m.workdir().manifest("match").unwrap().unwrap();
    assert!(matched.counts["pairs_with_several_candidates_in_origin"] >= 1);

    // The same rows through the content join, fetch and export: bytes equal to git's.
    let layout = archive::ArchiveDir::new(&archive_dir);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "\n[options]",
        &format!(
            "orc = {:?}\ndigestmap = {:?}\n\n[options]",
            layout.orc().display().to_string(),
            layout.digestmap().display().to_string()
        ),
    ) + &format!(
        "\n[fetch]\nstore = \"file://{}\"\n\n[export]\ninclude_binary = true\n",
        layout.contents().display()
    );
    std::fs::write(&config, text).unwrap();
    let outcomes = run(&config);
    let ran: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.ran)
        .map(|o| o.phase.name())
        .collect();
    assert_eq!(
        ran,
        ["content", "fetch", "export", "dataset"],
        "resolution checkpoints are reused"
    );
    let part = t.join("work/export/part-00000.parquet");
    let b = unearth::table::read(&part).unwrap();
    let s = |n: &str| unearth::table::strings(&b, &part, n).unwrap();
    let (status, content, revs, paths, repos) = (
        s("status"),
        s("content"),
        s("revision"),
        s("rel_path"),
        s("repo"),
    );
    let raw = b
        .column_by_name("content_bytes")
        .expect("include_binary adds content_bytes");
    let raw = arrow::array::AsArray::as_binary::<i32>(raw);
    let mut ok = 0;
    for i in 0..b.num_rows() {
        let git_says = || {
            let spec = format!(
                "{}:{}",
                revs[i].as_ref().unwrap(),
                paths[i].as_ref().unwrap()
            );
            git_bytes(
                &repo_of(repos[i].as_ref().unwrap()),
                &["cat-file", "-p", &spec],
            )
        };
        match status[i].as_deref() {
            Some("ok" | "symlink") => {
                let bytes = git_says();
                assert_eq!(
                    content[i].as_deref().map(str::as_bytes),
                    Some(&bytes[..]),
                    "row {i}"
                );
                ok += 1;
            }
            Some("binary") => {
                assert!(content[i].is_none(), "no text for binary row {i}");
                assert_eq!(raw.value(i), &git_says()[..], "row {i}");
                ok += 1;
            }
            _ => assert!(content[i].is_none(), "row {i}"),
        }
    }
    assert_eq!(
        ok,
        expect
            .iter()
            .filter(|s| matches!(**s, "ok" | "symlink"))
            .count(),
        "{status:?}"
    );
}

/// A linear history of `n` commits made with `git fast-import`: commit `i` sets `f.txt` to
/// `i`, and every `every`-th commit adds `d/k{i}.txt`. Returns the commits, oldest first.
fn fast_import_history(repo: &Path, n: usize, every: usize) -> Vec<String> {
    init_repo(repo);
    let mut stream = Vec::new();
    for i in 0..n {
        let text = format!("{i}\n");
        stream.extend_from_slice(
            format!(
                "commit refs/heads/main\nmark :{}\ncommitter T <t@example.org> {} +0000\ndata 2\nc\n",
                i + 1,
                1_600_000_000 + i
            )
            .as_bytes(),
        );
        if i > 0 {
            stream.extend_from_slice(format!("from :{i}\n").as_bytes());
        }
        stream.extend_from_slice(
            format!("M 100644 inline f.txt\ndata {}\n{text}\n", text.len()).as_bytes(),
        );
        if i % every == 0 {
            stream.extend_from_slice(
                format!("M 100644 inline d/k{i}.txt\ndata {}\n{text}\n", text.len()).as_bytes(),
            );
        }
    }
    let mut child = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fast-import", "--quiet", "--export-marks=.git/marks"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    let marks = std::fs::read_to_string(repo.join(".git/marks")).unwrap();
    let mut commits = vec![String::new(); n];
    for line in marks.lines() {
        let (mark, id) = line.split_once(' ').unwrap();
        commits[mark[1..].parse::<usize>().unwrap() - 1] = id.to_string();
    }
    commits
}

/// What `git` says of `path` at `commit`: the status unearth must give and the object id.
fn git_answer(repo: &Path, commit: &str, path: &str) -> (&'static str, Option<String>) {
    match rev_parse(repo, &format!("{commit}:{path}")) {
        None => ("path_not_found", None),
        Some(id) => {
            let kind = git_lines(repo, &["cat-file", "-t", &id])[0].clone();
            match kind.as_str() {
                "blob" => ("ok", Some(id)),
                "tree" => ("is_directory", None),
                other => panic!("unexpected {other}"),
            }
        }
    }
}

#[test]
fn deep_history_resolves_like_git_beyond_the_search_budget() {
    let tmp = tempdir();
    let t = tmp.path();
    // 40 times the search budget: the backward search from old commits runs out, and the
    // forward search from the origin's heads must decide them.
    let (n, budget) = (2000, 50);
    let deep = t.join("deep");
    let commits = fast_import_history(&deep, n, 400);
    let other = t.join("other");
    let other_commits = fast_import_history(&other, 3, 1);
    let archive_dir = t.join("archive");
    build_archive(
        &archive_dir,
        &[
            ("https://github.com/t/deep", &deep, None),
            ("https://github.com/t/other", &other, None),
        ],
        100_000,
    );

    let mut rows: Vec<(String, String, String)> = Vec::new();
    for i in [0, 1, 2, 399, 400, 401, 777, 1000, 1200, 1500, 1998, 1999] {
        for path in ["f.txt", "d/k400.txt", "d/k1200.txt", "d", "d/k401.txt"] {
            rows.push(("t/deep".into(), commits[i][..7].to_string(), path.into()));
        }
    }
    // A commit archived in another origin only.
    rows.push((
        "t/deep".into(),
        other_commits[2][..7].to_string(),
        "f.txt".into(),
    ));
    let meta = t.join("meta.parquet");
    let as_refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    write_metadata(&meta, &as_refs);
    let graph = archive::ArchiveDir::new(&archive_dir).graph();
    let config = write_config(
        t,
        &graph,
        &meta,
        &format!("origin_search_budget = {budget}"),
    );
    let outcomes = run(&config);
    let got = read_resolved(&t.join("work"));
    assert_eq!(got.len(), rows.len());
    let last = got.len() - 1;
    for (i, r) in got[..last].iter().enumerate() {
        let commit = commits
            .iter()
            .find(|c| c.starts_with(&r.commit_id))
            .unwrap();
        let (status, id) = git_answer(&deep, commit, &r.rel_path);
        assert_eq!(r.status, status, "row {i}: {r:?}");
        assert_eq!(r.sha1_git, id, "row {i}: {r:?}");
        assert_eq!(r.revision.as_deref(), Some(commit.as_str()), "row {i}");
        assert_eq!(r.origin_url.as_deref(), Some("https://github.com/t/deep"));
    }
    assert_eq!(got[last].status, "commit_not_in_origin", "{:?}", got[last]);
    let matched = outcomes.iter().find(|o| o.phase == "match").unwrap();
    let counts = &matched.manifest.counts;
    assert!(counts["budget_hit"] >= 5, "{counts:?}");
    assert!(counts["decided_backward"] >= 1, "{counts:?}");
    assert_eq!(
        counts["forward_searches"], 1,
        "one origin, searched once: {counts:?}"
    );
    assert!(counts["forward_visited"] >= n as u64, "{counts:?}");

    // The budget only trades time: another budget changes no checkpoint and no answer.
    let config = write_config(t, &graph, &meta, "origin_search_budget = 100000");
    let outcomes = run(&config);
    assert!(outcomes.iter().all(|o| !o.ran), "nothing reruns");
    std::fs::remove_dir_all(t.join("work")).unwrap();
    run(&config);
    let again = read_resolved(&t.join("work"));
    let key = |r: &Resolved| (r.status.clone(), r.revision.clone(), r.sha1_git.clone());
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        again.iter().map(key).collect::<Vec<_>>(),
        "a budget large enough for every backward search gives the same answers"
    );
}

/// One commit holding `file`, on top of `parent` when given.
fn one_commit(repo: &Path, file: &str, parent: Option<&str>) -> String {
    let c = commit_tree(repo, &[(file.as_bytes(), file.as_bytes())], parent, file);
    git(repo, &["update-ref", "refs/heads/main", &c]);
    c
}

#[test]
fn slugs_in_other_spellings_find_their_origins() {
    let tmp = tempdir();
    let t = tmp.path();
    let requests = t.join("requests");
    init_repo(&requests);
    let req = one_commit(&requests, "api.py", None);
    // A re-cased rename: the old spelling was visited, then the repository grew under the new.
    let old = t.join("old");
    init_repo(&old);
    let before = one_commit(&old, "before.txt", None);
    let new = t.join("new");
    git(
        t,
        &["clone", "-q", old.to_str().unwrap(), new.to_str().unwrap()],
    );
    let after = one_commit(&new, "after.txt", Some(&before));
    // An origin archived with `.git`.
    let dotgit = t.join("dotgit");
    init_repo(&dotgit);
    let dg = one_commit(&dotgit, "x.txt", None);

    let archive_dir = t.join("archive");
    build_archive(
        &archive_dir,
        &[
            (
                "https://github.com/psf/requests",
                &requests,
                Some("2022-01-01"),
            ),
            (
                "https://github.com/SoftwareHeritage/SWH-Graph",
                &old,
                Some("2020-01-01"),
            ),
            (
                "https://github.com/softwareheritage/swh-graph",
                &new,
                Some("2024-01-01"),
            ),
            ("https://github.com/x/y.git", &dotgit, Some("2022-01-01")),
        ],
        1000,
    );
    let rows = [
        (
            "psf/requests.git",
            &req,
            "api.py",
            "https://github.com/psf/requests",
        ),
        (
            "PSF/REQUESTS",
            &req,
            "api.py",
            "https://github.com/psf/requests",
        ),
        (
            "Psf/Requests.GIT",
            &req,
            "api.py",
            "https://github.com/psf/requests",
        ),
        (
            " psf/requests/ ",
            &req,
            "api.py",
            "https://github.com/psf/requests",
        ),
        ("psf/request", &req, "api.py", ""),
        ("x/y", &dg, "x.txt", "https://github.com/x/y.git"),
        ("X/Y.git", &dg, "x.txt", "https://github.com/x/y.git"),
        // Found through either spelling of the renamed repository.
        ("SOFTWAREHERITAGE/SWH-GRAPH", &before, "before.txt", "*"),
        ("softwareheritage/Swh-graph", &before, "before.txt", "*"),
        (
            "softwareheritage/swh-graph",
            &after,
            "after.txt",
            "https://github.com/softwareheritage/swh-graph",
        ),
        (
            "SoftwareHeritage/SWH-Graph",
            &after,
            "after.txt",
            "https://github.com/softwareheritage/swh-graph",
        ),
    ];
    let meta = t.join("meta.parquet");
    let as_refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(slug, c, path, _)| (*slug, &c[..7], *path))
        .collect();
    write_metadata(&meta, &as_refs);
    let config = write_config(
        t,
        &archive::ArchiveDir::new(&archive_dir).graph(),
        &meta,
        "",
    );
    run(&config);
    let got = read_resolved(&t.join("work"));
    assert_eq!(got.len(), rows.len());
    for (i, (r, (slug, commit, _, url))) in got.iter().zip(&rows).enumerate() {
        assert_eq!(r.repo, *slug, "the input spelling is kept");
        if url.is_empty() {
            assert_eq!(r.status, "origin_not_found", "row {i}: {r:?}");
            continue;
        }
        assert_eq!(r.status, "ok", "row {i}: {r:?}");
        assert_eq!(r.revision.as_deref(), Some(commit.as_str()), "row {i}");
        let used = r.origin_url.as_deref().unwrap();
        if *url == "*" {
            assert!(
                used.eq_ignore_ascii_case("https://github.com/softwareheritage/swh-graph"),
                "row {i}: {used}"
            );
        } else {
            assert_eq!(used, *url, "row {i}");
        }
    }
    let o = unearth()
        .args(["verify", "--sample", "1000", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("disagreed 0"), "{text}");
}

#[test]
fn example_dataset_resolves() {
    let Some(example) = shared_example() else {
        return;
    };
    let tmp = tempdir();
    let t = tmp.path();
    let id = |n: u32| format!("{n:040}");
    let rows = [
        ("swh/graph", id(9), "README.md"),
        ("swh/graph", id(9), "parser.c"),
        ("swh/graph", id(9), "tests"),
        ("swh/graph2", id(18), "old/TODO.txt"),
        ("swh/graph2", id(13), "oldproject/tests/main.py"),
        ("swh/graph2", id(18), "tests/main.py"),
        ("swh/graph", id(18), "README.md"),
        ("swh/graph3", id(9), "README.md"),
    ];
    let meta = t.join("meta.parquet");
    let as_refs: Vec<(&str, &str, &str)> =
        rows.iter().map(|(a, b, c)| (*a, b.as_str(), *c)).collect();
    write_metadata(&meta, &as_refs);
    let config = write_config(
        t,
        &example.join("compressed/example"),
        &meta,
        "url_templates = [\"https://example.com/{slug}\"]",
    );
    run(&config);
    let got = read_resolved(&t.join("work"));
    let summary: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|r| (r.status.as_str(), r.sha1_git.as_deref()))
        .collect();
    // Ground truth from the example's own directory_entry and revision tables.
    let (f1, f7, f5, f15) = (id(1), id(7), id(5), id(15));
    assert_eq!(
        summary,
        [
            ("ok", Some(f1.as_str())),
            ("ok", Some(f7.as_str())),
            ("is_directory", None),
            ("ok", Some(f15.as_str())),
            ("ok", Some(f5.as_str())),
            ("path_not_found", None),
            ("commit_not_in_origin", None),
            ("origin_not_found", None),
        ]
    );
}
