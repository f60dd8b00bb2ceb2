//! Every command of README.md, run exactly as written: the `demo` blocks in a fresh folder,
//! in order; `scripts/demo.sh` in the clone, as a new user runs it. (The `slurm` block runs
//! in `tests/slurm.rs`, which starts a cluster, and the `hydrate` block in `tests/hydrate.rs`,
//! beside the hydration's configuration; `scripts/test.sh` is what runs this test.)

mod common;

use common::*;

#[test]
fn every_readme_block_is_run_by_a_test() {
    let blocks = readme_blocks();
    assert!(blocks.len() >= 5, "{blocks:?}");
    for (tag, cmds) in &blocks {
        assert!(
            ["scripts", "demo", "slurm", "hydrate"].contains(&tag.as_str()),
            "README block without a known readme-test tag: {cmds:?}"
        );
        assert!(!cmds.is_empty());
    }
    let scripts: Vec<&Vec<String>> = blocks
        .iter()
        .filter(|(t, _)| t == "scripts")
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        scripts,
        [&vec![
            "scripts/demo.sh".to_string(),
            "scripts/test.sh".to_string()
        ]]
    );
}

#[test]
fn readme_demo_commands_run_as_written() {
    let tmp = tempdir();
    for (tag, cmds) in readme_blocks() {
        if tag != "demo" {
            continue;
        }
        for cmd in cmds {
            let o = run_readme_command(tmp.path(), &cmd, &[]);
            assert!(
                o.status.success(),
                "README command failed: {cmd}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    assert!(tmp.path().join("demo-archive/work/export").is_dir());
    assert!(tmp.path().join("my-archive/archive.json").is_file());
    // The demo's alpha has a lightweight and an annotated tag: one pair.
    let pairs = tmp.path().join("demo-archive/work/evolve/pairs.parquet");
    assert_eq!(unearth::table::read(&pairs).unwrap().num_rows(), 1);
    // Merged from two slices of one repository each: both have their status.
    let status =
        std::fs::read_to_string(tmp.path().join("demo-archive/work/evolve/repos.jsonl")).unwrap();
    assert_eq!(status.lines().count(), 2, "{status}");
    assert!(status.contains("\"repo\":\"demo-org/beta\""), "{status}");
    for f in unearth::digestmap::FILES {
        assert!(tmp.path().join("my-digestmap").join(f).is_file(), "{f}");
    }
    // The synthetic archive resolves as its generator expects, and the two-size benchmark
    // fitted a model and drew its pictures.
    let report = std::fs::read_to_string(tmp.path().join("bench-report/report.md")).unwrap();
    assert!(
        report.contains("Projection to the full archive"),
        "{report}"
    );
    // Both archives name repositories for `evolve`: it is measured on each.
    assert_eq!(
        report.matches("| evolve: repositories").count(),
        2,
        "{report}"
    );
    // The dataset phase's dedup and license rates, on each; the synthetic repositories carry
    // license files, so licenses were matched there.
    assert_eq!(report.matches("| dataset: rows").count(), 2, "{report}");
    let syn: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("bench-report/syn-small.json")).unwrap(),
    )
    .unwrap();
    let files = syn["dataset"]["counts"]["license_files"]
        .as_u64()
        .unwrap_or(0);
    assert!(files > 0, "no license file matched on syn-small: {syn}");
    for png in ["time.png", "memory.png", "strategies.png"] {
        let bytes = std::fs::read(tmp.path().join("bench-report").join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    assert!(tmp.path().join("bench-report/syn-small.json").is_file());
}

#[test]
fn scripts_demo_sh_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run_readme_command(root, "scripts/demo.sh", &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "scripts/demo.sh: {}{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("dataset: "), "{out}");
    assert!(out.contains("disagreed 0"), "{out}");
}
