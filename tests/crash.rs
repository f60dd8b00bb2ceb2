//! Crash safety without Slurm: every phase killed with SIGKILL at random moments (seeded),
//! then rerun; the final dataset must equal an uninterrupted run's, row for row. Also: a
//! sharded run gives exactly the single run's output.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use unearth::archive;
use unearth::model::Phase;

fn demo_with(tmp: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let out = tmp.join(name);
    archive::demo::build_demo(&out).unwrap();
    let cfg = out.join(archive::demo::CONFIG);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    if extra.contains("labels = ") {
        // Shards of the label pass are the single pass's (levels run as one job).
        text = text.replace("[options]\n", "[options]\nstrategy = \"single-pass\"\n");
    }
    text.push_str(extra);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

const SHARDS: &str = "\n[shards]\nscan = 3\nlabels = 2\ncontent = 2\nfetch = 3\nchunk_nodes = 7\n";

#[test]
fn sharded_run_equals_single_run() {
    let tmp = tempdir();
    let single = demo_with(tmp.path(), "single", "");
    let sharded = demo_with(tmp.path(), "sharded", SHARDS);
    for cfg in [&single, &sharded] {
        unearth_ok(&["run"], cfg);
    }
    let a = export_rows(&tmp.path().join("single/work"));
    let b = export_rows(&tmp.path().join("sharded/work"));
    assert_eq!(a.len(), 46);
    assert_eq!(a, b);
    // Shards are real: each sharded phase has its shard checkpoints.
    for (phase, n) in [("scan", 3), ("labels", 2), ("content", 2), ("fetch", 3)] {
        for i in 0..n {
            let d = tmp
                .path()
                .join(format!("sharded/work/{phase}-shard-{i:04}-of-{n:04}"));
            assert!(d.join("manifest.json").is_file(), "{}", d.display());
        }
    }
}

#[test]
fn sigkill_at_random_moments_then_rerun_gives_the_same_dataset() {
    let tmp = tempdir();
    let reference = demo_with(tmp.path(), "reference", SHARDS);
    unearth_ok(&["run"], &reference);
    let want = export_rows(&tmp.path().join("reference/work"));

    let cfg = demo_with(tmp.path(), "crashy", SHARDS);
    let work = tmp.path().join("crashy/work");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261121);
    let mut kills = 0;
    let mut per_phase = std::collections::BTreeMap::new();
    for phase in Phase::ALL.map(Phase::name) {
        // How long the phase takes here, to aim the kills inside it.
        let t = Instant::now();
        unearth_ok(&[phase], &cfg);
        let took = t.elapsed().as_micros().max(2_000) as u64;
        let mut attempts = 0;
        while per_phase.get(phase).copied().unwrap_or(0) < 3 && attempts < 200 {
            attempts += 1;
            // Make the phase (and its shards) redo its work, then kill it somewhere inside.
            for e in std::fs::read_dir(&work).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().to_string();
                if name == phase || name.starts_with(&format!("{phase}-shard-")) {
                    std::fs::remove_dir_all(work.join(&name)).unwrap();
                }
            }
            let mut child = unearth()
                .args([phase, "--config"])
                .arg(&cfg)
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(rng.random_range(0..took)));
            // SAFETY: plain kill(2) on our child's pid.
            let r = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let status = child.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            if r == 0 && status.signal() == Some(libc::SIGKILL) {
                kills += 1;
                *per_phase.entry(phase).or_insert(0) += 1;
            }
        }
        // Finish the phase before moving to the next one.
        unearth_ok(&[phase], &cfg);
    }
    assert!(kills >= 20, "only {kills} kills landed: {per_phase:?}");
    unearth_ok(&["run"], &cfg);
    let got = export_rows(&work);
    assert_eq!(got, want, "after {kills} kills ({per_phase:?})");
    // No half-written phase folder is left behind as if complete.
    for e in std::fs::read_dir(&work).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if !name.starts_with('.') && !["blobs", "graph.json"].contains(&name.as_str()) {
            assert!(
                work.join(&name).join("manifest.json").is_file(),
                "{name} has no manifest"
            );
        }
    }
}
