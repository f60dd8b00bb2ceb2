//! The demo archive compared with git, object by object.
//!
//! One test builds the demo (its compression takes a few seconds) and checks everything
//! against `git` run on the demo's own repositories: commits and their parents, trees and
//! their labelled entries, blob lengths, the blob store, snapshots against refs, origin URLs,
//! and the expected answers of the demo metadata.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use arrow::array::{Array, AsArray};
use common::*;
use sha1::{Digest, Sha1};
use swh_graph::graph::SwhGraph;

use unearth::archive::{self, demo, ArchiveDir, Manifest};

/// `(type, id)` of each id, by `git cat-file --batch-check`.
fn object_types(repo: &Path, ids: &[String]) -> Vec<(String, String)> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch-check=%(objecttype) %(objectname)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = ids.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(t, i)| (t.to_string(), i.to_string()))
        })
        .filter(|(t, _)| t != "missing")
        .collect()
}

/// Parses `git ls-tree -z` output into `(name, mode, target SWHID)`.
fn ls_tree(repo: &Path, tree: &str) -> BTreeSet<(Vec<u8>, u16, String)> {
    let out = git_bytes(repo, &["ls-tree", "-z", tree]);
    out.split(|&b| b == 0)
        .filter(|r| !r.is_empty())
        .map(|rec| {
            let tab = rec.iter().position(|&b| b == b'\t').unwrap();
            let meta = std::str::from_utf8(&rec[..tab]).unwrap();
            let mut it = meta.split(' ');
            let mode = u16::from_str_radix(it.next().unwrap(), 8).unwrap();
            let kind = match it.next().unwrap() {
                "blob" => "cnt",
                "tree" => "dir",
                "commit" => "rev",
                other => panic!("unexpected {other}"),
            };
            let id = it.next().unwrap();
            (rec[tab + 1..].to_vec(), mode, format!("swh:1:{kind}:{id}"))
        })
        .collect()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn check_repo(
    graph: &impl unearth::graph::FullGraph,
    repo: &Path,
    cap: u64,
    stored: &BTreeMap<String, String>,
) {
    let props = graph.properties();
    let targets: Vec<String> = kept_refs(repo).into_iter().map(|(_, id)| id).collect();
    let mut args = vec!["rev-list", "--objects", "--missing=print"];
    args.extend(targets.iter().map(String::as_str));
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for line in git_lines(repo, &args) {
        let id = line.split(' ').next().unwrap().to_string();
        match id.strip_prefix('?') {
            Some(m) => missing.push(m.to_string()),
            None => present.push(id),
        }
    }
    // rev-list --objects lists commits and trees and blobs but not tag objects.
    present.extend(targets.iter().cloned());
    present.sort();
    present.dedup();
    assert!(!present.is_empty(), "{} has objects", repo.display());
    for (ty, id) in object_types(repo, &present) {
        match ty.as_str() {
            "commit" => {
                let n = node(graph, &format!("swh:1:rev:{id}"));
                let parents = git_lines(repo, &["rev-list", "--parents", "-n1", &id]);
                let mut expected: BTreeSet<String> = parents[0]
                    .split(' ')
                    .skip(1)
                    .map(|p| format!("swh:1:rev:{p}"))
                    .collect();
                let tree = git_lines(repo, &["rev-parse", &format!("{id}^{{tree}}")]);
                expected.insert(format!("swh:1:dir:{}", tree[0]));
                assert_eq!(successors(graph, n), expected, "successors of commit {id}");
                let times = git_lines(repo, &["log", "-1", "--format=%at %ct", &id]);
                let (at, ct) = times[0].split_once(' ').unwrap();
                assert_eq!(props.author_timestamp(n), Some(at.parse().unwrap()), "{id}");
                assert_eq!(
                    props.committer_timestamp(n),
                    Some(ct.parse().unwrap()),
                    "{id}"
                );
                // The raw message: everything after the header's blank line.
                let raw = git_bytes(repo, &["cat-file", "commit", &id]);
                let body = raw
                    .windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|i| raw[i + 2..].to_vec());
                assert_eq!(props.message(n), body, "message of {id}");
            }
            "tree" => {
                let n = node(graph, &format!("swh:1:dir:{id}"));
                assert_eq!(
                    dir_entries(graph, n),
                    ls_tree(repo, &id),
                    "entries of tree {id}"
                );
            }
            "blob" => {
                let n = node(graph, &format!("swh:1:cnt:{id}"));
                let size: u64 = git_lines(repo, &["cat-file", "-s", &id])[0]
                    .parse()
                    .unwrap();
                assert_eq!(props.content_length(n), Some(size), "length of blob {id}");
                assert_eq!(
                    props.is_skipped_content(n),
                    size > cap,
                    "skipped bit of {id}"
                );
                if size <= cap {
                    assert!(stored.contains_key(&id), "blob {id} is in the store");
                } else {
                    assert!(
                        !stored.contains_key(&id),
                        "blob {id} over the cap is not stored"
                    );
                }
            }
            "tag" => {
                let n = node(graph, &format!("swh:1:rel:{id}"));
                let target = git_lines(repo, &["rev-parse", &format!("{id}^{{commit}}")]);
                let expected: BTreeSet<String> = [format!("swh:1:rev:{}", target[0])].into();
                assert_eq!(successors(graph, n), expected, "target of tag {id}");
            }
            other => panic!("unexpected object type {other}"),
        }
    }
    for id in missing {
        // Referenced, so a node; never archived, so no length and no stored blob.
        let n = node(graph, &format!("swh:1:cnt:{id}"));
        assert_eq!(
            props.content_length(n),
            None,
            "missing blob {id} has no length"
        );
        assert!(!stored.contains_key(&id), "missing blob {id} is not stored");
    }
}

fn check_snapshot(graph: &impl unearth::graph::FullGraph, repo: &Path, url: &str, snapshot: &str) {
    let props = graph.properties();
    let origin = node(
        graph,
        &format!(
            "swh:1:ori:{}",
            unearth::model::hashes::hex(&Sha1::digest(url.as_bytes()))
        ),
    );
    assert_eq!(
        props.message(origin).as_deref(),
        Some(url.as_bytes()),
        "URL of {url}"
    );
    let snp = format!("swh:1:snp:{snapshot}");
    assert!(successors(graph, origin).contains(&snp), "{url} -> {snp}");
    let mut expected: BTreeSet<(Vec<u8>, String)> = BTreeSet::new();
    for (name, id) in kept_refs(repo) {
        let ty = &object_types(repo, std::slice::from_ref(&id))[0].0;
        let kind = match ty.as_str() {
            "commit" => "rev",
            "tag" => "rel",
            "tree" => "dir",
            _ => "cnt",
        };
        expected.insert((name.into_bytes(), format!("swh:1:{kind}:{id}")));
    }
    // HEAD is an alias (no arc) unless detached, in which case it names a commit.
    let symbolic = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["symbolic-ref", "-q", "HEAD"])
        .status()
        .unwrap()
        .success();
    if !symbolic {
        let id = git_lines(repo, &["rev-parse", "HEAD"]);
        expected.insert((b"HEAD".to_vec(), format!("swh:1:rev:{}", id[0])));
    }
    assert_eq!(
        branches(graph, node(graph, &snp)),
        expected,
        "branches of {url}"
    );
}

/// Snapshot identifiers recomputed by swh.model, SWH's own Python implementation.
fn check_snapshot_ids_with_swh_model(root: &Path, manifest: &Manifest) {
    let mut script = String::from(
        "import sys, subprocess\nfrom swh.model.model import Snapshot\n\
         def refs(repo):\n  out = subprocess.run(['git','-C',repo,'for-each-ref','--format=%(objecttype) %(objectname) %(refname)'],capture_output=True,check=True).stdout.decode()\n  \
         b = {}\n  \
         for l in out.splitlines():\n    t, i, n = l.split(' ', 2)\n    \
         if n.startswith('refs/pull/') and n.endswith('/merge'): continue\n    \
         b[n.encode()] = {'target': bytes.fromhex(i), 'target_type': {'commit':'revision','tag':'release','tree':'directory','blob':'content'}[t]}\n  \
         h = subprocess.run(['git','-C',repo,'symbolic-ref','-q','HEAD'],capture_output=True).stdout.decode().strip()\n  \
         if h: b[b'HEAD'] = {'target': h.encode(), 'target_type': 'alias'}\n  \
         else:\n    i = subprocess.run(['git','-C',repo,'rev-parse','HEAD'],capture_output=True,check=True).stdout.decode().strip()\n    b[b'HEAD'] = {'target': bytes.fromhex(i), 'target_type': 'revision'}\n  \
         return Snapshot.from_dict({'branches': b}).id.hex()\n",
    );
    for v in &manifest.visits {
        script.push_str(&format!(
            "print({:?}, refs({:?}))\n",
            v.snapshot,
            root.join(&v.path).display().to_string()
        ));
    }
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "swh.model must be installed (scripts/setup.sh does it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), manifest.visits.len());
    for line in text.lines() {
        let (ours, theirs) = line.split_once(' ').unwrap();
        assert_eq!(ours, theirs, "snapshot id differs from swh.model's");
    }
}

fn read_parquet(path: &Path) -> arrow::array::RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn check_metadata(root: &Path) {
    let meta = read_parquet(&root.join("metadata/part_0.parquet"));
    for col in ["repo", "commit_id", "rel_path"] {
        let field = meta.schema().field_with_name(col).unwrap().clone();
        assert_eq!(
            field.data_type(),
            &arrow::datatypes::DataType::Utf8,
            "{col}"
        );
    }
    let exp = read_parquet(&root.join("metadata/expected.parquet"));
    assert_eq!(meta.num_rows(), exp.num_rows());
    let col = |name: &str| exp.column_by_name(name).unwrap().as_string::<i32>().clone();
    let (status, revision, sha1_git, repo, path) = (
        col("expected_status"),
        col("expected_revision"),
        col("expected_sha1_git"),
        col("repo"),
        col("rel_path"),
    );
    let mut seen_statuses = BTreeSet::new();
    for i in 0..exp.num_rows() {
        seen_statuses.insert(status.value(i).to_string());
        if revision.is_null(i) {
            continue;
        }
        let repo_dir = match repo.value(i) {
            "demo-org/alpha" => "alpha",
            "forker/alpha" => "alpha-fork",
            "demo-org/beta" => "beta",
            "demo-org/gamma" => "gamma",
            "demo-org/partial" => "partial",
            "demo-org/reused" => {
                let rev = revision.value(i);
                let old = root.join("repos/reused-old.git");
                if Command::new("git")
                    .arg("-C")
                    .arg(&old)
                    .args(["cat-file", "-e", rev])
                    .status()
                    .unwrap()
                    .success()
                {
                    "reused-old"
                } else {
                    "reused-new"
                }
            }
            other => panic!("unexpected repo {other}"),
        };
        let git_dir = root.join(format!("repos/{repo_dir}.git"));
        let spec = format!("{}:{}", revision.value(i), path.value(i));
        let got = Command::new("git")
            .arg("-C")
            .arg(&git_dir)
            .args(["rev-parse", "-q", "--verify", &spec])
            .output()
            .unwrap();
        let got = String::from_utf8(got.stdout).unwrap().trim().to_string();
        match status.value(i) {
            "ok" | "symlink" => assert_eq!(got, sha1_git.value(i), "row {i}: {spec}"),
            "is_directory" => assert_eq!(
                git_lines(&git_dir, &["cat-file", "-t", &got]),
                ["tree"],
                "row {i}"
            ),
            "submodule" | "path_not_found" => assert!(sha1_git.is_null(i), "row {i}"),
            other => panic!("row {i}: unexpected status {other} with a revision"),
        }
    }
    for s in [
        "ok",
        "symlink",
        "is_directory",
        "submodule",
        "path_not_found",
        "origin_not_found",
        "commit_not_found",
        "commit_not_in_origin",
        "invalid",
    ] {
        assert!(
            seen_statuses.contains(s),
            "the demo metadata has a row with status {s}"
        );
    }
}

#[test]
fn demo_archive_matches_git() {
    let tmp = tempdir();
    let out = tmp.path().join("demo");
    let outcome = demo::build_demo(&out).expect("demo builds");
    assert!(outcome.built);
    let manifest = Manifest::read(&out).expect("manifest");
    assert_eq!(manifest, outcome.manifest);
    let layout = ArchiveDir::new(&out);
    let graph = unearth::graph::open(&layout.graph()).expect("graph loads");
    assert_eq!(graph.num_nodes() as u64, manifest.nodes);

    // The blob store: every file gunzips to bytes whose sha1 is its key; index it by sha1_git.
    let mut stored = BTreeMap::new();
    for entry in std::fs::read_dir(layout.contents()).unwrap() {
        let path = entry.unwrap().path();
        let key = path.file_name().unwrap().to_str().unwrap().to_string();
        let data = gunzip(&path);
        assert_eq!(
            unearth::model::hashes::hex(&Sha1::digest(&data)),
            key,
            "sha1 of {key}"
        );
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", data.len()));
        h.update(&data);
        stored.insert(unearth::model::hashes::hex(&h.finalize()), key);
    }
    assert_eq!(stored.len() as u64, manifest.stored_blobs);
    assert!(
        manifest.skipped_blobs >= 1,
        "the demo has a blob over the cap"
    );

    let mut repos_seen = BTreeSet::new();
    for v in &manifest.visits {
        let repo = out.join(&v.path);
        if repos_seen.insert(repo.clone()) {
            check_repo(&graph, &repo, manifest.max_content_size, &stored);
        }
        check_snapshot(&graph, &repo, &v.url, &v.snapshot);
    }
    // Every stored blob belongs to some repository's objects (checked above from git's side).
    let partial = manifest
        .visits
        .iter()
        .find(|v| v.url.ends_with("/partial"))
        .unwrap();
    assert_eq!(partial.status, "partial");
    assert_eq!(partial.missing.len(), 1, "{:?}", partial.missing);
    let reused: Vec<_> = manifest
        .visits
        .iter()
        .filter(|v| v.url.ends_with("/reused"))
        .collect();
    assert_eq!(reused.len(), 2);
    assert_ne!(reused[0].snapshot, reused[1].snapshot);
    assert_eq!((reused[0].visit, reused[1].visit), (1, 2));

    // The commit only refs/pull/1/merge names is not archived.
    let alpha = out.join("repos/alpha.git");
    let merge_ref = git_lines(&alpha, &["rev-parse", "refs/pull/1/merge"]);
    assert!(!has_node(&graph, &format!("swh:1:rev:{}", merge_ref[0])));

    check_snapshot_ids_with_swh_model(&out, &manifest);
    check_metadata(&out);

    // A second run finds the demo complete and does nothing.
    let again = demo::build_demo(&out).expect("rerun");
    assert!(!again.built);
    assert_eq!(again.manifest, manifest);
    let _ = archive::MANIFEST;
}
