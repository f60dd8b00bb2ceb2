//! Content join, fetch and export: contents against `git cat-file`, a real S3 server
//! (s3s-fs) on loopback behind a fault-injecting proxy, a fetch killed with SIGKILL, and the
//! dataset read back by pyarrow.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::unearth_with as run_cli;
use common::*;
use unearth::archive;
use unearth_loopback::{FaultCounts, FaultPlan, S3Server};

/// One exported row.
#[derive(Debug, Clone)]
struct Row {
    repo: String,
    rel_path: String,
    revision: Option<String>,
    status: String,
    content: Option<String>,
}

fn read_export(workdir: &Path) -> Vec<Row> {
    let dir = workdir.join("export");
    let files = parquet_files(&dir);
    let mut rows = Vec::new();
    for f in files {
        let b = unearth::table::read(&f).unwrap();
        let s = |n: &str| unearth::table::strings(&b, &f, n).unwrap();
        let (repo, path, rev, status, content) = (
            s("repo"),
            s("rel_path"),
            s("revision"),
            s("status"),
            s("content"),
        );
        for i in 0..b.num_rows() {
            rows.push(Row {
                repo: repo[i].clone().unwrap_or_default(),
                rel_path: path[i].clone().unwrap_or_default(),
                revision: rev[i].clone(),
                status: status[i].clone().unwrap(),
                content: content[i].clone(),
            });
        }
    }
    rows
}

fn repo_dir(demo: &Path, slug: &str, rev: &str) -> PathBuf {
    let name = match slug {
        "demo-org/alpha" => "alpha",
        "forker/alpha" => "alpha-fork",
        "demo-org/beta" => "beta",
        "demo-org/gamma" => "gamma",
        "demo-org/partial" => "partial",
        _ => {
            let old = demo.join("repos/reused-old.git");
            let ok = Command::new("git")
                .arg("-C")
                .arg(&old)
                .args(["cat-file", "-e", rev])
                .status()
                .unwrap()
                .success();
            if ok {
                "reused-old"
            } else {
                "reused-new"
            }
        }
    };
    demo.join(format!("repos/{name}.git"))
}

/// Checks every exported row against git; returns the counts per status.
fn check_against_git(demo: &Path, workdir: &Path) -> BTreeMap<String, usize> {
    let rows = read_export(workdir);
    let mut counts = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.status.clone()).or_default() += 1;
        match r.status.as_str() {
            "ok" | "symlink" => {
                let rev = r.revision.as_ref().unwrap();
                let repo = repo_dir(demo, &r.repo, rev);
                let bytes = git_bytes(&repo, &["cat-file", "-p", &format!("{rev}:{}", r.rel_path)]);
                assert_eq!(
                    r.content.as_deref().map(str::as_bytes),
                    Some(&bytes[..]),
                    "{r:?}"
                );
            }
            _ => assert!(r.content.is_none(), "no content for {r:?}"),
        }
    }
    counts
}

fn write_config(demo: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(demo.join(archive::demo::CONFIG)).unwrap();
    let text = text.split("[fetch]").next().unwrap().to_string() + extra;
    let path = demo.join("test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn local_store_export_matches_git() {
    let tmp = tempdir();
    let demo = tmp.path().join("demo");
    archive::demo::build_demo(&demo).unwrap();
    let o = run_cli(&["run"], &demo.join(archive::demo::CONFIG));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts = check_against_git(&demo, &demo.join("work"));
    assert_eq!(counts.get("skipped"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("content_not_found"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("symlink"), Some(&1), "{counts:?}");
    assert!(counts["ok"] >= 20, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 46, "every row once");
    // The demo joins through the digestmap; the ORC scan gives the same join.
    let cfg = unearth::config::Config::load(&demo.join(archive::demo::CONFIG)).unwrap();
    let [orc, map] = common::joins_agree(&cfg);
    assert_eq!(orc["status_skipped"], map["status_skipped"], "{orc} {map}");
    assert_eq!(orc["status_skipped"].as_u64(), Some(1), "{orc}");
    let summary: BTreeMap<String, u64> = serde_json::from_str(
        &std::fs::read_to_string(demo.join("work/export/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["status_ok"] as usize, counts["ok"], "{summary:?}");

    // A blob whose bytes were altered in the store is refused and never exported.
    let store = tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut victim = None;
    for e in std::fs::read_dir(demo.join("objects/content")).unwrap() {
        let p = e.unwrap().path();
        let mut data = std::fs::read(&p).unwrap();
        if victim.is_none() && data.len() > 30 {
            let n = data.len();
            data[n / 2] ^= 0xff;
            victim = Some(p.file_name().unwrap().to_owned());
        }
        std::fs::write(store.join(p.file_name().unwrap()), data).unwrap();
    }
    let cfg = write_config(
        &demo,
        &format!(
            "[fetch]\nstore = \"file://{}\"\nattempts = 2\nbackoff_ms = 1\n",
            store.display()
        ),
    );
    std::fs::remove_dir_all(demo.join("work")).unwrap();
    let o = run_cli(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts = check_against_git(&demo, &demo.join("work"));
    assert!(
        counts.get("corrupt_blob").copied().unwrap_or(0) >= 1,
        "{counts:?}"
    );

    // pyarrow, an independent reader, sees the same dataset.
    let script = r#"
import sys, glob, pyarrow.parquet as pq
t = pq.read_table(sorted(glob.glob(sys.argv[1] + "/part-*.parquet")))
cols = set(t.column_names)
need = {"repo", "commit_id", "rel_path", "status", "content", "size", "language",
        "avg_line_length", "max_line_length", "alphanum_fraction", "sha1", "sha1_git"}
assert need <= cols, need - cols
rows = t.to_pylist()
ok = [r for r in rows if r["status"] == "ok"]
print(len(rows), len(ok), sum(1 for r in ok if r["content"] is not None and r["size"] == len(r["content"].encode())))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(demo.join("work/export"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let nums: Vec<usize> = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(nums[0], 46);
    assert_eq!(
        nums[1], nums[2],
        "every ok row has its content, of its size"
    );
}

/// A real S3 server (s3s-fs) serving `data`, whose folders are buckets; it must start.
fn start_s3(data: &Path) -> S3Server {
    S3Server::start(data).unwrap_or_else(|e| panic!("this test needs a real S3 server: {e}"))
}

/// Serves the archive's objects/ as bucket `softwareheritage` (key `content/<sha1>`).
fn bucket_dir(tmp: &Path, demo: &Path) -> PathBuf {
    let data = tmp.join("s3data");
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(demo.join("objects"), data.join("softwareheritage")).unwrap();
    data
}

fn start_proxy(
    upstream: SocketAddr,
    plan: FaultPlan,
) -> (tokio::runtime::Runtime, SocketAddr, Arc<FaultCounts>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counts = Arc::new(FaultCounts::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(unearth_loopback::serve(
        listener,
        upstream,
        plan,
        counts.clone(),
    ));
    (rt, addr, counts)
}

#[test]
fn s3_fetch_through_faults_exports_exact_bytes() {
    let tmp = tempdir();
    let demo = tmp.path().join("demo");
    archive::demo::build_demo(&demo).unwrap();
    // One blob the content table names is absent from the bucket: blob_missing.
    let gone = std::fs::read_dir(demo.join("objects/content"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&gone).unwrap();
    let server = start_s3(&bucket_dir(tmp.path(), &demo));
    let plan = FaultPlan {
        seed: 7,
        latency_ms: 5,
        slowdown: 0.15,
        reset: 0.1,
        truncate: 0.1,
        corrupt: 0.1,
        ..FaultPlan::latency(5)
    };
    let (_rt, proxy, counts) = start_proxy(server.addr, plan);
    let cfg = write_config(
        &demo,
        &format!(
            "[fetch]\nstore = \"s3://softwareheritage/content\"\nendpoint = \"http://{proxy}\"\n\
             concurrency = 8\nattempts = 12\nbackoff_ms = 5\ntimeout_secs = 10\n"
        ),
    );
    let o = run_cli(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = check_against_git(&demo, &demo.join("work"));
    assert_eq!(c.get("blob_missing"), Some(&1), "{c:?}");
    assert!(
        !c.contains_key("corrupt_blob") && !c.contains_key("fetch_failed"),
        "{c:?}"
    );
    let [requests, slowdowns, resets, truncated, corrupted] = counts.snapshot();
    assert!(requests > 40, "{requests}");
    assert!(
        slowdowns > 0 && resets > 0 && truncated > 0 && corrupted > 0,
        "{:?}",
        counts.snapshot()
    );

    // Signed requests are refused by a server started without keys: unsigned access is what
    // reached it above.
    let cfg_signed = write_config(
        &demo,
        &format!("[fetch]\nstore = \"s3://softwareheritage/content\"\nendpoint = \"http://{}\"\nsigned = true\nattempts = 1\n", server.addr),
    );
    std::fs::remove_dir_all(demo.join("work/blobs")).unwrap();
    std::fs::remove_dir_all(demo.join("work/fetch")).unwrap();
    let o = unearth()
        .args(["fetch", "--config"])
        .arg(&cfg_signed)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(demo.join("work/fetch/manifest.json")).unwrap();
    assert!(
        m.contains("\"fetched\": 0"),
        "signed requests must not get bytes: {m}"
    );
}

#[test]
fn killed_fetch_resumes_without_refetching() {
    let tmp = tempdir();
    let demo = tmp.path().join("demo");
    archive::demo::build_demo(&demo).unwrap();
    let server = start_s3(&bucket_dir(tmp.path(), &demo));
    let (_rt, proxy, counts) = start_proxy(server.addr, FaultPlan::latency(150));
    let cfg = write_config(
        &demo,
        &format!("[fetch]\nstore = \"s3://softwareheritage/content\"\nendpoint = \"http://{proxy}\"\nconcurrency = 2\n"),
    );
    for phase in [
        "plan", "names", "scan", "match", "reach", "labels", "walk", "content",
    ] {
        assert!(run_cli(&[phase], &cfg).status.success(), "{phase}");
    }
    let mut child = unearth()
        .args(["fetch", "--config"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    let idx = demo.join("work/blobs/shard-0000-of-0001/pack-00000.idx");
    let start = Instant::now();
    while std::fs::metadata(&idx).map(|m| m.len()).unwrap_or(0) < 40 * 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "fetch made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no cleanup of any kind runs.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let stored_at_kill = std::fs::metadata(&idx).unwrap().len() / 40;
    let before = counts.snapshot()[0];
    let o = run_cli(&["run"], &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(demo.join("work/fetch/manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    let wanted = v["counts"]["wanted"].as_u64().unwrap();
    let already = v["counts"]["already_stored"].as_u64().unwrap();
    assert!(already >= stored_at_kill, "{already} < {stored_at_kill}");
    let second_run_requests = counts.snapshot()[0] - before;
    assert_eq!(
        second_run_requests,
        wanted - already,
        "only the missing blobs are asked for"
    );
    check_against_git(&demo, &demo.join("work"));
}
