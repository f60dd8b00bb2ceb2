//! The integrity rules: what a careless or hostile user does must neither lose data nor
//! export wrong bytes. One test per rule.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, StringArray};
use common::unearth_with as run;
use common::*;
use unearth::archive;

/// The demo archive in `tmp/name`, its config with `extra` appended; returns the config.
fn demo_config(tmp: &Path, name: &str, extra: &str) -> PathBuf {
    let out = tmp.join(name);
    archive::demo::build_demo(&out).unwrap();
    let cfg = out.join(archive::demo::CONFIG);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = match text.split_once("[fetch]") {
        Some((head, _)) if extra.contains("[fetch]") => head.to_string(),
        _ => text,
    };
    std::fs::write(&cfg, text + extra).unwrap();
    cfg
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line(o: &std::process::Output) -> String {
    stderr(o).lines().last().unwrap_or("").to_string()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The sha1 of the blobs of the `ok` rows of the export of `work`, sorted.
fn ok_blobs(work: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in parquet_files(&work.join("export")) {
        let b = unearth::table::read(&f).unwrap();
        let status = unearth::table::strings(&b, &f, "status").unwrap();
        let sha1 = unearth::table::strings(&b, &f, "sha1").unwrap();
        for (st, sha) in status.into_iter().zip(sha1) {
            if st.as_deref() == Some("ok") {
                out.extend(sha);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A copy of the demo's blob store in `tmp/name`, without the blobs `without`.
fn store_copy(tmp: &Path, demo: &Path, name: &str, without: &[String]) -> PathBuf {
    let store = tmp.join(name);
    std::fs::create_dir_all(&store).unwrap();
    for e in std::fs::read_dir(demo.join("objects/content")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if !without.contains(&n) {
            std::fs::copy(&p, store.join(&n)).unwrap();
        }
    }
    store
}

fn small_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    init_repo(&repo);
    std::fs::write(repo.join("a.txt"), "a\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    repo
}

fn build(out: &Path, repo: &Path, url: &str) -> std::process::Output {
    unearth()
        .args(["archive", "build", "--out"])
        .arg(out)
        .args(["--repo", &format!("{url}={}", repo.display())])
        .output()
        .unwrap()
}

/// Rule 1: `archive build` and `archive demo` never delete or replace what they did not make.
#[test]
fn archive_builds_never_touch_what_they_did_not_make() {
    let tmp = tempdir();
    let t = tmp.path();
    let repo = small_repo(t);
    let repo_before = snapshot(&repo);

    // A folder of the user's.
    let mine = t.join("mine");
    std::fs::create_dir_all(mine.join("sub")).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let before = snapshot(&mine);
    let o = build(&mine, &repo, "https://example.org/r");
    assert!(!o.status.success());
    assert!(last_line(&o).contains("not empty"), "{}", stderr(&o));
    assert!(
        last_line(&o).contains("mine"),
        "names the folder: {}",
        stderr(&o)
    );
    assert_eq!(snapshot(&mine), before, "nothing of the user's changed");
    let o = unearth()
        .args(["archive", "demo", "--out"])
        .arg(&mine)
        .output()
        .unwrap();
    assert!(!o.status.success(), "demo refuses it too");
    assert_eq!(snapshot(&mine), before);

    // --out equal to, inside or above the repository read.
    for out in [
        repo.clone(),
        repo.join("archive"),
        t.to_path_buf(),
        repo.join(".git/x"),
    ] {
        let o = build(&out, &repo, "https://example.org/r");
        assert!(!o.status.success(), "{}", out.display());
        assert!(last_line(&o).contains("the repository"), "{}", stderr(&o));
    }
    assert_eq!(snapshot(&repo), repo_before, "the repository is untouched");

    // A finished archive: same inputs, nothing to do; other inputs, refused.
    let out = t.join("archive");
    assert!(build(&out, &repo, "https://example.org/r").status.success());
    std::fs::write(out.join("README.user"), "mine").unwrap();
    let built = snapshot(&out);
    let o = build(&out, &repo, "https://example.org/r");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already holds this archive"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&out), built);
    let o = build(&out, &repo, "https://example.org/other");
    assert!(!o.status.success());
    assert!(
        last_line(&o).contains("other repositories"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&out), built);
    // The repository moves on: the same inputs are rebuilt; the user's file stays.
    std::fs::write(repo.join("b.txt"), "b\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "two"]);
    let o = build(&out, &repo, "https://example.org/r");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("built"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("README.user")).unwrap(),
        "mine"
    );
    let head = git_lines(&repo, &["rev-parse", "HEAD"])[0].clone();
    let graph = unearth::graph::open(&archive::ArchiveDir::new(&out).graph()).unwrap();
    assert!(
        has_node(&graph, &format!("swh:1:rev:{head}")),
        "the new commit is archived"
    );
}

/// Rule 2: bytes are verified where they are read: a damaged blob in the local store gives
/// its rows `corrupt_blob`, never wrong bytes, and is fetched again by the next run.
#[test]
fn damaged_stored_blobs_are_caught_at_export_and_fetched_again() {
    let tmp = tempdir();
    let cfg = demo_config(tmp.path(), "demo", "");
    let work = tmp.path().join("demo/work");
    unearth_ok(&["run"], &cfg);
    let want = export_rows(&work);
    // Damage the middle of every stored frame.
    let store = work.join("blobs/shard-0000-of-0001");
    let mut damaged = 0;
    for e in std::fs::read_dir(&store).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "bin") {
            let mut bytes = std::fs::read(&p).unwrap();
            for i in (7..bytes.len()).step_by(53) {
                bytes[i] ^= 0x21;
                damaged += 1;
            }
            std::fs::write(&p, bytes).unwrap();
        }
    }
    assert!(damaged > 0);
    // The export is made again from the damaged store.
    std::fs::remove_dir_all(work.join("export")).unwrap();
    let o = run(&["run"], &cfg);
    assert!(o.status.success(), "the export goes on: {}", stderr(&o));
    let rows = export_rows(&work);
    assert_eq!(rows.len(), want.len());
    let corrupt = rows
        .iter()
        .filter(|r| r.contains("\"corrupt_blob\""))
        .count();
    assert!(corrupt > 0, "damaged blobs are reported: {rows:?}");
    for (got, w) in rows.iter().zip(&want) {
        assert!(
            got == w || got.contains("\"corrupt_blob\""),
            "wrong bytes exported: {got}"
        );
    }
    // The next run fetches them again and exports exactly the reference dataset.
    let o = run(&["run"], &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("fetch   done"), "{}", stderr(&o));
    assert_eq!(export_rows(&work), want);
}

/// Rule 3: a phase run alone refuses stale upstream checkpoints; a missing or altered
/// checkpoint file is detected and its phase redone.
#[test]
fn stale_or_altered_checkpoints_are_never_read() {
    let tmp = tempdir();
    let cfg = demo_config(tmp.path(), "demo", "");
    let work = tmp.path().join("demo/work");
    unearth_ok(&["run"], &cfg);
    let want = export_rows(&work);

    // The metadata changes: a phase run alone names the stale plan.
    let meta = tmp.path().join("demo/metadata/part_0.parquet");
    let bytes = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, &bytes).unwrap(); // same bytes, new modification time
    for phase in ["scan", "walk", "export"] {
        let o = run(&[phase], &cfg);
        assert!(!o.status.success(), "{phase} runs on a stale plan");
        assert!(
            last_line(&o).contains("phase plan is stale"),
            "{}",
            stderr(&o)
        );
    }
    unearth_ok(&["run"], &cfg);

    // An options change makes the scan stale for the phases after it.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let changed = text.replace(
        "url_templates = [\"https://github.com/{slug}\"]",
        "url_templates = [\"https://github.com/{slug}\", \"https://gitlab.com/{slug}\"]",
    );
    assert_ne!(changed, text);
    std::fs::write(&cfg, changed).unwrap();
    let o = run(&["walk"], &cfg);
    assert!(
        last_line(&o).contains("phase scan is stale"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&cfg, &text).unwrap();

    // Checkpoint files altered or removed behind unearth's back.
    let entries = work.join("labels/entries.flat");
    let mut b = std::fs::read(&entries).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&entries, b).unwrap();
    let o = run(&["walk"], &cfg);
    assert!(!o.status.success());
    assert!(
        last_line(&o).contains("phase labels is stale"),
        "{}",
        stderr(&o)
    );
    assert!(
        last_line(&o).contains("entries.flat was altered"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(work.join("scan/candidates.flat")).unwrap();
    let o = run(&["run"], &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for phase in ["scan", "labels"] {
        assert!(
            err.contains(&format!("{phase:<7} done")),
            "{phase} is redone: {err}"
        );
    }
    assert_eq!(export_rows(&work), want);
}

/// Rule 4: `blob_missing` is asked again of another store, and on `--retry-missing`.
#[test]
fn missing_blobs_are_retried_against_another_store_or_on_request() {
    let tmp = tempdir();
    let reference = demo_config(tmp.path(), "reference", "");
    unearth_ok(&["run"], &reference);
    let needed = ok_blobs(&tmp.path().join("reference/work"));
    let demo = tmp.path().join("demo");
    archive::demo::build_demo(&demo).unwrap();
    let full = demo.join("objects/content");
    let partial = store_copy(tmp.path(), &demo, "partial", &needed[..1]);
    let store = |dir: &Path| format!("[fetch]\nstore = \"file://{}\"\n", dir.display());
    let cfg = demo_config(tmp.path(), "demo", &store(&partial));
    let work = demo.join("work");
    unearth_ok(&["run"], &cfg);
    let missing = |work: &Path| {
        export_rows(work)
            .iter()
            .filter(|r| r.contains("\"blob_missing\""))
            .count()
    };
    assert!(missing(&work) >= 1);
    // Another store: asked again, found.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(&store(&partial), &store(&full))).unwrap();
    unearth_ok(&["run"], &cfg);
    assert_eq!(missing(&work), 0, "the full store has every blob");

    // Same store, the blob appears later: only --retry-missing asks again.
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::write(&cfg, text.clone()).unwrap();
    unearth_ok(&["run"], &cfg);
    let before = missing(&work);
    assert!(before >= 1);
    std::fs::copy(full.join(&needed[0]), partial.join(&needed[0])).unwrap();
    unearth_ok(&["run"], &cfg);
    assert_eq!(
        missing(&work),
        before,
        "a plain rerun trusts the recorded status"
    );
    unearth_ok(&["run", "--retry-missing"], &cfg);
    assert_eq!(missing(&work), 0);
}

/// Rule 5: values out of range are refused when the configuration is loaded, naming the key.
#[test]
fn bad_config_values_are_refused_naming_their_key() {
    let tmp = tempdir();
    for (extra, key) in [
        ("\n[shards]\nfetch = 0\n", "shards.fetch"),
        ("\n[export]\nrows_per_file = 0\n", "export.rows_per_file"),
        ("\n[slurm.phases.scann]\ncpus = 4\n", "slurm.phases.scann"),
    ] {
        let cfg = demo_config(tmp.path(), "demo", extra);
        let o = run(&["run"], &cfg);
        assert!(!o.status.success(), "{extra}");
        assert!(
            last_line(&o).contains(&format!("{key}:")),
            "{extra}: {}",
            stderr(&o)
        );
        assert!(
            last_line(&o).contains("unearth.toml"),
            "names the file: {}",
            stderr(&o)
        );
        let fresh = std::fs::read_to_string(&cfg).unwrap().replace(extra, "");
        std::fs::write(&cfg, fresh).unwrap();
    }
    for (fetch, key) in [
        ("concurrency = 0", "fetch.concurrency"),
        ("timeout_secs = nan", "fetch.timeout_secs"),
        ("timeout_secs = -2.0", "fetch.timeout_secs"),
    ] {
        let cfg = demo_config(
            tmp.path(),
            "demo",
            &format!("[fetch]\nstore = \"file://objects/content\"\n{fetch}\n"),
        );
        let o = run(&["run"], &cfg);
        assert!(!o.status.success(), "{fetch}");
        assert!(
            last_line(&o).contains(&format!("{key}:")),
            "{fetch}: {}",
            stderr(&o)
        );
    }
    assert!(!tmp.path().join("demo/work").exists(), "nothing ran");
}

/// Rule 6: a `file://` store reads regular files only, with a size cap: a FIFO, a device or a
/// link to `/dev/zero` are refused at once, in bounded memory.
#[test]
fn a_file_store_reads_only_small_regular_files() {
    let tmp = tempdir();
    let reference = demo_config(tmp.path(), "reference", "");
    unearth_ok(&["run"], &reference);
    let hostile: Vec<String> = ok_blobs(&tmp.path().join("reference/work"))[..3].to_vec();
    let demo = tmp.path().join("demo");
    archive::demo::build_demo(&demo).unwrap();
    let store = store_copy(tmp.path(), &demo, "hostile", &[]);
    std::fs::remove_file(store.join(&hostile[0])).unwrap();
    let c = std::ffi::CString::new(store.join(&hostile[0]).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path of the test's own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::remove_file(store.join(&hostile[1])).unwrap();
    std::os::unix::fs::symlink("/dev/zero", store.join(&hostile[1])).unwrap();
    std::fs::remove_file(store.join(&hostile[2])).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", store.join(&hostile[2])).unwrap();
    let cfg = demo_config(
        tmp.path(),
        "demo",
        &format!(
            "[fetch]\nstore = \"file://{}\"\nattempts = 2\nbackoff_ms = 1\ntimeout_secs = 5.0\n",
            store.display()
        ),
    );
    // At most 4 GB of address space and 120 s: without the checks, /dev/zero is read until
    // memory runs out and the FIFO blocks forever.
    let mut child = Command::new("bash")
        .args(["-c", "ulimit -v 4000000; exec \"$0\" run --config \"$1\""])
        .arg(env!("CARGO_BIN_EXE_unearth"))
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the fetch hung on the hostile store");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let rows = export_rows(&demo.join("work"));
    let bad = rows
        .iter()
        .filter(|r| r.contains("\"corrupt_blob\"") || r.contains("\"fetch_failed\""))
        .count();
    assert!(bad >= 3, "{rows:?}");
    assert!(rows.iter().filter(|r| r.contains("\"ok\"")).count() >= 15);
}

/// Rule 7: input columns named like output columns are renamed in every output, so every
/// file has unique column names; parts with different columns are refused at plan time.
#[test]
fn clashing_and_mismatched_input_columns() {
    let tmp = tempdir();
    let t = tmp.path();
    let demo = t.join("demo");
    archive::demo::build_demo(&demo).unwrap();
    let head = git_lines(
        &demo.join("repos/alpha.git"),
        &["rev-parse", "refs/heads/main"],
    )[0]
    .clone();
    let meta = t.join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    let col = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("repo", col("demo-org/alpha")),
        ("commit_id", col(&head[..7])),
        ("rel_path", col("README.md")),
    ];
    let clashing = [
        "status",
        "content",
        "language",
        "sha1",
        "size",
        "resolution_status",
        "row_id",
    ];
    for name in clashing {
        cols.push((name, col(&format!("mine-{name}"))));
    }
    unearth::table::write(&meta.join("part_0.parquet"), cols.clone()).unwrap();
    let cfg = t.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "graph = {:?}\nmetadata = {:?}\nworkdir = \"work\"\norc = {:?}\n[fetch]\nstore = \"file://{}\"\n",
            archive::ArchiveDir::new(&demo).graph().display().to_string(),
            meta.display().to_string(),
            archive::ArchiveDir::new(&demo).orc().display().to_string(),
            archive::ArchiveDir::new(&demo).contents().display()
        ),
    )
    .unwrap();
    unearth_ok(&["run"], &cfg);
    let mut files = parquet_files(&t.join("work/walk"));
    files.extend(parquet_files(&t.join("work/export")));
    assert_eq!(files.len(), 2);
    for f in &files {
        let b = unearth::table::read(f).unwrap();
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{}: {names:?}", f.display());
        // Every input value is still there, under one name or another.
        for name in clashing {
            let want = format!("mine-{name}");
            let found = names.iter().any(|n| {
                unearth::table::strings(&b, f, n)
                    .map(|v| v[0].as_deref() == Some(want.as_str()))
                    .unwrap_or(false)
            });
            assert!(found, "{}: input column {name} lost", f.display());
        }
    }
    let export = &files[1];
    let b = unearth::table::read(export).unwrap();
    assert_eq!(
        unearth::table::strings(&b, export, "status").unwrap()[0].as_deref(),
        Some("ok")
    );
    assert_eq!(
        unearth::table::strings(&b, export, "input_content").unwrap()[0].as_deref(),
        Some("mine-content")
    );

    // A second part with other columns is refused at plan time, naming both files.
    cols.truncate(4);
    cols.push(("extra", col("x")));
    unearth::table::write(&meta.join("part_1.parquet"), cols).unwrap();
    let o = run(&["run"], &cfg);
    assert!(!o.status.success());
    let line = last_line(&o);
    assert!(
        line.contains("part_0.parquet") && line.contains("part_1.parquet"),
        "{line}"
    );
    assert!(line.contains("different columns"), "{line}");
}

/// Rule 8: a closed standard output (`unearth ... | head`) is not a crash.
#[test]
fn a_closed_stdout_ends_quietly() {
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cluster.toml");
    for args in [
        vec![
            "slurm",
            "submit",
            "--dry-run",
            "--config",
            cluster.to_str().unwrap(),
        ],
        vec!["--help"],
    ] {
        let mut child = unearth()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            o.status.success() || o.status.code().is_none(),
            "{args:?}: {err}"
        );
    }
    // The same through a shell pipe, as a user types it.
    let o = Command::new("bash")
        .args(["-c", "set -o pipefail; \"$0\" slurm submit --dry-run --config \"$1\" | head -c 10 >/dev/null"])
        .arg(env!("CARGO_BIN_EXE_unearth"))
        .arg(&cluster)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
