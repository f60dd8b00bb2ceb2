//! Synthetic archives: the generator's world has the shape it promises, and every row's
//! answer from the pipeline equals the answer the generator computed from its own model.

mod common;

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::UInt32Type;
use common::*;

/// Every value of the Utf8 or UInt32 column `name` of `files` (concatenated), as text.
fn column(files: &[std::path::PathBuf], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for f in files {
        let b = unearth::table::read(f).unwrap();
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("{}: no column {name}", f.display()));
        if let Some(s) = col.as_string_opt::<i32>() {
            out.extend(s.iter().map(|v| v.map(str::to_string)));
        } else {
            let u = col.as_primitive::<UInt32Type>();
            out.extend((0..u.len()).map(|i| u.is_valid(i).then(|| u.value(i).to_string())));
        }
    }
    out
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("synth.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn synthetic_rows_resolve_to_the_generators_answers() {
    let tmp = tempdir();
    let dir = tmp.path().join("syn");
    let o = unearth()
        .args(["archive", "synth", "--out"])
        .arg(&dir)
        .args([
            "--nodes",
            "80000",
            "--rows",
            "6000",
            "--max-commits",
            "3000",
            "--rows-per-part",
            "2500",
            "--seed",
            "5",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The world has what the generator promises.
    let r = report(&dir);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    for k in [
        "forks",
        "merges",
        "releases",
        "reused_slugs",
        "recased_origins",
        "dotgit_origins",
    ] {
        assert!(n(k) > 0, "{k}: {r}");
    }
    assert!(n("longest_history") >= 3000, "{r}");
    assert!(n("visits") > n("origins"), "several visits per origin: {r}");
    assert!(
        n("commits") > n("revisions"),
        "some commits came after the last visit: {r}"
    );
    let ex = &r["expected"];
    for s in [
        "ok",
        "path_not_found",
        "origin_not_found",
        "commit_not_in_origin",
        "invalid",
    ] {
        assert!(ex[s].as_u64().unwrap_or(0) > 0, "{s}: {ex}");
    }
    assert_eq!(n("rows"), 6000);
    let parts = parquet_files(&dir.join("metadata"));
    assert_eq!(parts.len(), 3, "rows split into parts of 2500");

    // Every row's answer equals the generator's.
    let cfg = dir.join("unearth.toml");
    unearth_ok(&["run"], &cfg);
    // The other label strategy resolves every row the same; levels decode fewer directories.
    let [levels, single] = strategies_agree(&unearth::config::Config::load(&cfg).unwrap());
    // The digestmap join gives the ORC scan's join.
    joins_agree(&unearth::config::Config::load(&cfg).unwrap());
    let dirs = |c: &serde_json::Value| c["directories"].as_u64().unwrap();
    assert!(levels["levels"].as_u64().unwrap() > 1, "{levels}");
    assert!(dirs(&levels) < dirs(&single), "{levels} vs {single}");
    let resolved = parquet_files(&dir.join("work/walk"));
    let answers = [dir.join("expected/answers.parquet")];
    assert_eq!(
        column(&resolved, "rel_path"),
        column(&answers, "rel_path"),
        "rows in input order"
    );
    let mut several = 0;
    for (got, want) in [
        ("status", "expected_status"),
        ("revision", "expected_revision"),
        ("sha1_git", "expected_sha1_git"),
        ("origin_url", "expected_origin_url"),
        ("snapshot", "expected_snapshot"),
        ("candidates", "expected_candidates"),
        ("candidates_with_path", "expected_candidates_with_path"),
    ] {
        let (g, w) = (column(&resolved, got), column(&answers, want));
        assert_eq!(g.len(), 6000);
        let wrong: Vec<usize> = (0..g.len()).filter(|&i| g[i] != w[i]).collect();
        assert!(
            wrong.is_empty(),
            "{got}: {} rows differ, first: row {} got {:?} want {:?}",
            wrong.len(),
            wrong[0],
            g[wrong[0]],
            w[wrong[0]]
        );
        if got == "candidates_with_path" {
            several = g
                .iter()
                .flatten()
                .filter(|v| v.parse::<u32>().unwrap() > 1)
                .count();
        }
    }
    assert!(
        several > 0,
        "some rows' paths are held by several commits of the prefix"
    );
}
