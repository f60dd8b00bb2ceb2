//! `unearth hydrate` on a Stack-v2-like file: blob ids of a test archive served by a real S3
//! server (s3s-fs) on loopback, some missing or malformed, one file in windows-1252; the
//! bytes against `git`, every row's status, the decoded text, and the same through SWHIDs
//! joined by the digestmap.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use common::*;
use sha1::Digest;
use unearth_loopback::S3Server;

fn write(repo: &Path, path: &str, bytes: &[u8]) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// The planted files: path, bytes, the encoding the metadata names.
const FILES: [(&str, &[u8], Option<&str>); 4] = [
    ("src/app.py", b"def main():\n    return 42\n", Some("UTF-8")),
    (
        "src/cafe.py",
        b"# caf\xe9 cr\xe8me\nprice = 3\n",
        Some("windows-1252"),
    ),
    (
        "src/lib.rs",
        b"pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n",
        None,
    ),
    // Not UTF-8, named UTF-8: no text, status `binary`.
    ("src/bad.py", b"x = '\xff\xfe'\n", Some("UTF-8")),
];

struct Row {
    status: String,
    content: Option<String>,
    encoding: Option<String>,
    path: Option<String>,
}

fn read_parts(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in parquet_files(dir) {
        let b = unearth::table::read(&f).unwrap();
        let s = |n: &str| unearth::table::strings(&b, &f, n).unwrap();
        let (st, c, e, p) = (s("status"), s("content"), s("src_encoding"), s("rel_path"));
        for i in 0..b.num_rows() {
            rows.push(Row {
                status: st[i].clone().unwrap(),
                content: c[i].clone(),
                encoding: e[i].clone(),
                path: p[i].clone(),
            });
        }
    }
    rows
}

fn metadata(path: &Path, ids: &[String], paths: &[&str], encodings: &[Option<&str>]) {
    unearth::table::write(
        path,
        vec![
            (
                "blob_id",
                Arc::new(StringArray::from_iter_values(ids.iter())) as ArrayRef,
            ),
            (
                "path",
                Arc::new(StringArray::from_iter_values(paths.iter())),
            ),
            (
                "repo_name",
                Arc::new(StringArray::from_iter_values(
                    paths.iter().map(|_| "t/code"),
                )),
            ),
            (
                "src_encoding",
                Arc::new(StringArray::from(encodings.to_vec())),
            ),
            (
                "language",
                Arc::new(StringArray::from_iter_values(
                    paths.iter().map(|_| "theirs"),
                )),
            ),
        ],
    )
    .unwrap();
}

#[test]
fn hydrates_stack_v2_ids_through_loopback_s3_with_statuses_and_decoding() {
    let tmp = tempdir();
    let repo = tmp.path().join("code");
    init_repo(&repo);
    for (p, bytes, _) in FILES {
        write(&repo, p, bytes);
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "files"]);
    let archive_dir = tmp.path().join("archive");
    let layout = archive_one(&archive_dir, "https://github.com/t/code", &repo);
    // The bucket: the archive's objects as `softwareheritage/content/<sha1>`.
    let data = tmp.path().join("s3data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(archive_dir.join("objects"), data.join("softwareheritage")).unwrap();
    let server =
        S3Server::start(&data).unwrap_or_else(|e| panic!("this test needs a real S3 server: {e}"));

    let sha1 = |b: &[u8]| hex::encode(sha1::Sha1::digest(b));
    let mut ids: Vec<String> = FILES.iter().map(|f| sha1(f.1)).collect();
    let mut paths: Vec<&str> = FILES.iter().map(|f| f.0).collect();
    let mut encodings: Vec<Option<&str>> = FILES.iter().map(|f| f.2).collect();
    // Missing from the bucket, malformed, and a second row of the first blob.
    ids.extend([sha1(b"never archived"), "not-a-sha1".into(), ids[0].clone()]);
    paths.extend(["src/gone.py", "src/bad_id.py", "src/app_copy.py"]);
    encodings.extend([None, None, Some("utf-8")]);
    let meta = tmp.path().join("stack.parquet");
    metadata(&meta, &ids, &paths, &encodings);
    let config = tmp.path().join("hydrate.toml");
    let work = tmp.path().join("work");
    std::fs::write(
        &config,
        format!(
            "metadata = {:?}\nworkdir = {:?}\ndigestmap = {:?}\n\n\
             [fetch]\nstore = \"s3://softwareheritage/content\"\nendpoint = \"http://{}\"\n\n\
             [dataset]\nmin_alphanum_fraction = 0.0\n",
            meta.display().to_string(),
            work.display().to_string(),
            layout.digestmap().display().to_string(),
            server.addr,
        ),
    )
    .unwrap();
    let o = unearth_ok(&["hydrate"], &config);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("rows: 7"), "{out}");

    let rows = read_parts(&work.join("export"));
    assert_eq!(rows.len(), ids.len(), "every input row has a status");
    let want = ["ok", "ok", "ok", "binary", "blob_missing", "invalid", "ok"];
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.status, want[i], "row {i} ({:?})", r.path);
        assert_eq!(r.path.as_deref(), Some(paths[i]));
    }
    // Exactly git's bytes; the windows-1252 file decoded to UTF-8.
    for (i, (p, _, _)) in FILES.iter().enumerate().take(3) {
        let bytes = git_bytes(&repo, &["cat-file", "-p", &format!("HEAD:{p}")]);
        let text = rows[i].content.as_deref().unwrap();
        if i == 1 {
            assert_eq!(text, "# café crème\nprice = 3\n");
            assert_eq!(rows[i].encoding.as_deref(), Some("windows-1252"));
        } else {
            assert_eq!(text.as_bytes(), &bytes[..], "{p}");
        }
    }
    assert!(rows[3].content.is_none() && rows[4].content.is_none());

    // The dataset: the four texts (the copy is an exact duplicate), their input columns kept.
    let dataset = work.join("dataset");
    let mut texts: Vec<String> = Vec::new();
    for f in parquet_files(&dataset.join("data/Python")) {
        let b = unearth::table::read(&f).unwrap();
        texts.extend(
            unearth::table::strings(&b, &f, "content")
                .unwrap()
                .into_iter()
                .flatten(),
        );
    }
    texts.sort();
    assert_eq!(
        texts,
        ["# café crème\nprice = 3\n", "def main():\n    return 42\n"]
    );
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, pyarrow.dataset as ds\n\
             t = ds.dataset(sys.argv[1] + '/data', format='parquet').to_table()\n\
             print(sorted(t.column('path').to_pylist()), sorted(t.column('input_language').to_pylist()))",
        )
        .arg(&dataset)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let listed = String::from_utf8_lossy(&py.stdout);
    assert!(
        listed.contains("['src/app.py', 'src/cafe.py', 'src/lib.rs']"),
        "{listed}"
    );
    assert!(listed.contains("'theirs'"), "{listed}");

    // A rerun asks the server for nothing and redoes nothing: every phase's checkpoint is
    // current.
    let manifests = [
        "content",
        "fetch-shard-0000-of-0001",
        "fetch",
        "export",
        "dataset",
    ]
    .map(|p| work.join(p).join("manifest.json"));
    let stamps = |m: &[std::path::PathBuf; 5]| {
        m.clone()
            .map(|p| std::fs::metadata(&p).unwrap().modified().unwrap())
    };
    let before = stamps(&manifests);
    let again = unearth_ok(&["hydrate"], &config);
    let again = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.contains("0 fetched now"), "{again}");
    assert_eq!(
        stamps(&manifests),
        before,
        "a current hydration is not redone"
    );

    // A changed dataset option redoes the dataset alone.
    let o = unearth_with(&["hydrate", "--set", "dataset.near_dedup=false"], &config);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = stamps(&manifests);
    assert_eq!(
        after[..4],
        before[..4],
        "the phases before the dataset are kept"
    );
    assert_ne!(after[4], before[4], "the dataset is redone");

    // Phase by phase, as Slurm jobs run them: the fetch in three shards and a merge, in a
    // fresh work directory, gives the same rows; a phase asked for before the one it reads
    // is refused, naming it.
    let sharded_work = format!("workdir={}", tmp.path().join("work-sharded").display());
    let published = tmp.path().join("published");
    let sharded_out = format!("dataset.out={}", published.display());
    let sharded = |extra: &[&str]| {
        let mut args = vec!["hydrate", "--set", "shards.fetch=3", "--set", &sharded_work];
        args.extend_from_slice(&["--set", &sharded_out]);
        args.extend_from_slice(extra);
        unearth_with(&args, &config)
    };
    let early = sharded(&["--phase", "export"]);
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(!early.status.success() && err.contains("content"), "{err}");
    for step in [
        &["--phase", "content"][..],
        &["--phase", "fetch", "--shard", "2/3"],
        &["--phase", "fetch", "--shard", "0/3"],
        &["--phase", "fetch", "--shard", "1/3"],
        &["--phase", "fetch", "--merge"],
        &["--phase", "export"],
        &["--phase", "dataset", "--shard", "0/1"],
        &["--phase", "dataset", "--merge"],
    ] {
        let o = sharded(step);
        assert!(
            o.status.success(),
            "{step:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let split = read_parts(&tmp.path().join("work-sharded/export"));
    assert_eq!(split.len(), rows.len());
    for (a, b) in split.iter().zip(&rows) {
        assert_eq!((&a.status, &a.content), (&b.status, &b.content));
    }
    assert!(tmp.path().join("work-sharded/hydrate.json").is_file());
    // The merge job publishes the dataset at `[dataset] out`.
    assert!(published.join("README.md").is_file());

    // A license filter over rows that carry no license column is refused, naming it.
    let filtered = tmp.path().join("filtered.toml");
    std::fs::write(
        &filtered,
        std::fs::read_to_string(&config).unwrap().replace(
            "[dataset]\n",
            "[dataset]\nlicense_types = [\"permissive\"]\n",
        ),
    )
    .unwrap();
    let o = unearth_with(&["hydrate"], &filtered);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("license_type") && err.contains("license_types"),
        "{err}"
    );

    // `unearth bench` of a hydration: its own run, against the one-at-a-time loop through
    // the same server.
    let bench = unearth_ok(&["bench"], &config);
    let report = String::from_utf8_lossy(&bench.stdout).to_string();
    assert!(report.contains("hydrate / one at a time"), "{report}");
    let figures_path = tmp.path().join("work.bench/hydrate-figures.json");
    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&figures_path).unwrap()).unwrap();
    assert_eq!(figures["counts"]["rows"], 7, "{figures}");
    assert_eq!(figures["counts"]["fetch"]["fetched"], 4, "{figures}");
    // Six valid ids (one repeated), five of them in the bucket.
    assert_eq!(figures["serial"]["requests"], 6, "{figures}");
    assert_eq!(figures["serial"]["bodies"], 5, "{figures}");

    // The same files named by SWHIDs, joined to sha1 through the digestmap.
    let swhids: Vec<String> = FILES
        .iter()
        .map(|(p, _, _)| {
            let git_id = git_lines(&repo, &["rev-parse", &format!("HEAD:{p}")])[0].clone();
            format!("swh:1:cnt:{git_id}")
        })
        .chain(["swh:1:cnt:0000000000000000000000000000000000000001".to_string()])
        .collect();
    let meta2 = tmp.path().join("swhids.parquet");
    let p2: Vec<&str> = FILES
        .iter()
        .map(|f| f.0)
        .chain(["src/unknown.py"])
        .collect();
    let e2: Vec<Option<&str>> = FILES.iter().map(|f| f.2).chain([None]).collect();
    metadata(&meta2, &swhids, &p2, &e2);
    let config2 = tmp.path().join("swhid.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&meta.display().to_string(), &meta2.display().to_string())
        .replace(
            &work.display().to_string(),
            &tmp.path().join("work2").display().to_string(),
        )
        + "\n[hydrate]\nid_kind = \"swhid\"\n";
    std::fs::write(&config2, text).unwrap();
    unearth_ok(&["hydrate"], &config2);
    let rows2 = read_parts(&tmp.path().join("work2/export"));
    let st: Vec<&str> = rows2.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(st, ["ok", "ok", "ok", "binary", "content_not_found"]);
    for i in 0..3 {
        assert_eq!(rows2[i].content, rows[i].content);
    }

    // The same SWHIDs joined through the ORC content tables instead (no digestmap).
    let config3 = tmp.path().join("swhid-orc.toml");
    let text = std::fs::read_to_string(&config2)
        .unwrap()
        .replace(
            &format!("digestmap = {:?}", layout.digestmap().display().to_string()),
            &format!("orc = {:?}", layout.orc().display().to_string()),
        )
        .replace(
            &tmp.path().join("work2").display().to_string(),
            &tmp.path().join("work3").display().to_string(),
        );
    assert!(
        text.contains("orc = ") && !text.contains("digestmap"),
        "{text}"
    );
    std::fs::write(&config3, text).unwrap();
    unearth_ok(&["hydrate"], &config3);
    let rows3 = read_parts(&tmp.path().join("work3/export"));
    let st3: Vec<&str> = rows3.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(st3, st);
    for i in 0..3 {
        assert_eq!(rows3[i].content, rows[i].content);
    }
}

/// README's hydration commands, exactly as written, beside the configuration it describes:
/// the demo archive's blobs as a Stack-v2-like file, served from its folder.
#[test]
fn readme_hydrate_commands_run_as_written() {
    let tmp = tempdir();
    let dir = tmp.path();
    unearth::archive::demo::build_demo(&dir.join("demo-archive")).unwrap();
    let o = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stack-ids.py"))
        .arg(dir.join("demo-archive"))
        .arg(dir.join("stack.parquet"))
        .args(["--rows", "30", "--missing", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        dir.join("stack.toml"),
        "metadata = \"stack.parquet\"\nworkdir = \"work-stack\"\n\n\
         [fetch]\nstore = \"file://demo-archive/objects/content\"\n\n\
         [shards]\nfetch = 2\n",
    )
    .unwrap();
    let mut ran = 0;
    let mut last = String::new();
    for (tag, cmds) in readme_blocks() {
        if tag != "hydrate" {
            continue;
        }
        for cmd in cmds {
            let o = run_readme_command(dir, &cmd, &[]);
            assert!(
                o.status.success(),
                "README command failed: {cmd}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            last = String::from_utf8_lossy(&o.stdout).to_string();
            ran += 1;
        }
    }
    assert!(ran >= 8, "the README's hydrate block: {ran} commands");
    // `status` lists the hydration's phases and shards, all done.
    for unit in ["content", "fetch shard 1/2", "fetch", "export", "dataset"] {
        assert!(
            last.lines()
                .any(|l| l.starts_with(unit) && l.contains("done")),
            "{unit}:\n{last}"
        );
    }
    assert!(!last.contains("walk"), "{last}");
    let rows = read_parts(&dir.join("work-stack/export"));
    assert_eq!(rows.len(), 32);
    assert_eq!(
        rows.iter().filter(|r| r.status == "blob_missing").count(),
        2
    );
    assert!(dir.join("work-stack/dataset/README.md").is_file());
}
