//! The benchmark as Markdown: per archive, the baselines and every phase; across archives,
//! the fitted model and its projection.

use std::fmt::Write;

use super::child::Usage;

use super::figures::ArchiveFigures;
use super::model::{self, PhaseModel};

fn mb(b: f64) -> f64 {
    b / 1e6
}

/// Human seconds: `42 s`, `3.1 h`, `2.0 d`.
pub fn duration(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Human bytes.
pub fn bytes(b: f64) -> String {
    if b < 1e6 {
        format!("{:.0} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.0} MB", b / 1e6)
    } else if b < 1e12 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} TB", b / 1e12)
    }
}

/// The tables of one archive.
pub fn archive(a: &ArchiveFigures) -> String {
    let mut s = String::new();
    let cache = if a.cold { "cold" } else { "warm" };
    let _ = writeln!(
        s,
        "### {}: {} nodes, {} arcs\n\ngraph `{}`; {} cores, {:.0} GB; page cache {cache} before each phase and read\n",
        a.name,
        a.nodes,
        a.arcs,
        a.graph.display(),
        a.machine.cores,
        a.machine.memory as f64 / 1e9
    );
    s.push_str("| raw sequential read | bytes | MB/s |\n|---|---:|---:|\n");
    for b in &a.baselines {
        let _ = writeln!(s, "| {} | {} | {:.0} |", b.what, b.bytes, mb(b.rate()));
    }
    let disk = a.disk_rate();
    s.push_str(
        "\n| phase | wall s | CPU s | peak RSS MB | peak anon MB | storage read MB | read / wall vs disk | \
         pass s | pass / raw read of its files |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &a.phases {
        let u = &p.usage;
        let rate = u.storage_read as f64 / u.wall.max(1e-9);
        let pass = p
            .pass_seconds
            .map(|x| format!("{x:.3}"))
            .unwrap_or_default();
        let pass_ratio = p
            .pass_bytes
            .zip(p.pass_seconds)
            .zip(p.pass_baseline.as_deref().and_then(|b| a.baseline(b)))
            .map(|((bytes, secs), base)| bytes as f64 / secs.max(1e-9) / base.rate())
            .filter(|r| r.is_finite())
            .map(|r| format!("{r:.3}"))
            .unwrap_or_default();
        let vs_disk = Some(rate / disk)
            .filter(|r| r.is_finite())
            .map(|r| format!("{r:.3}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {vs_disk} | {pass} | {pass_ratio} |",
            p.phase,
            u.wall,
            u.user + u.system,
            mb(u.max_rss as f64),
            mb(u.max_anon as f64),
            mb(u.storage_read as f64),
        );
    }
    if let Some(r) = &a.random_access {
        let rows = a.phase("plan").map_or(0, |p| p.count("rows"));
        let pipeline = resolution_seconds(a);
        let all = r.per_row() * rows as f64;
        let _ = writeln!(
            s,
            "\nper-row random access (verify's hop-by-hop walk, {} rows, {} agree with the pipeline): \
             {:.2} ms per row, {} for all {rows} rows, against {} for the resolution phases \
             (plan to walk): {:.1}x\n",
            r.rows,
            r.agreed,
            r.per_row() * 1e3,
            duration(all),
            duration(pipeline),
            all / pipeline.max(1e-9)
        );
    }
    s.push_str(&strategies(a));
    s.push_str(&joins(a));
    if let Some(e) = &a.evolve {
        s.push_str(&super::evolve::report(e, a.baseline(super::evolve::STORE)));
    }
    if let Some(d) = &a.dataset {
        s.push_str(&super::dataset::report(a, d));
    }
    s
}

/// The content join by source, and the digestmap's lookups alone.
fn joins(a: &ArchiveFigures) -> String {
    let mut s = String::new();
    let orc = a.baseline("ORC content + skipped_content");
    if let (Some(content), false) = (a.phase("content"), a.joins.is_empty()) {
        s.push_str(
            "\n| content join source | wall s | CPU s | pass s (chunks summed) | ORC rows read | \
             ORC MB/s per core | ids looked up | join identical |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        // The full scan reads every row of the tables: its rate is the tables' bytes over
        // its pass time (chunks summed: one core each).
        let full_rows = a
            .joins
            .iter()
            .filter_map(|j| j.counts.get("orc_rows_read").copied())
            .chain([content.count("orc_rows_read")])
            .max()
            .unwrap_or(0);
        let mut row = |name: &str, u: &Usage, c: &dyn Fn(&str) -> u64, same: &str| {
            let pass = c("pass_micros") as f64 / 1e6;
            let per_core = match orc {
                Some(b) if full_rows > 0 && c("orc_rows_read") == full_rows => {
                    format!("{:.0}", mb(b.bytes as f64 / pass.max(1e-9)))
                }
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {name} | {:.3} | {:.3} | {pass:.3} | {} | {per_core} | {} | {same} |",
                u.wall,
                u.user + u.system,
                c("orc_rows_read"),
                c("lookups"),
            );
        };
        row("as configured", &content.usage, &|k| content.count(k), "-");
        for j in &a.joins {
            let c = |k: &str| j.counts.get(k).copied().unwrap_or(0);
            row(
                &format!("{} alone", j.source),
                &j.usage,
                &c,
                if j.identical { "yes" } else { "no" },
            );
        }
    }
    if !a.lookups.is_empty() {
        s.push_str(
            "\n| digestmap lookups (warm, sorted ids, graph properties included) | threads | \
             seconds | ids per second | ids per second per core |\n|---|---:|---:|---:|---:|\n",
        );
        for l in &a.lookups {
            let _ = writeln!(
                s,
                "| {} ids ({} found) | {} | {:.3} | {:.3e} | {:.3e} |",
                l.ids,
                l.found,
                l.threads,
                l.seconds,
                l.ids as f64 / l.seconds.max(1e-9),
                l.rate_per_core(),
            );
        }
    }
    s
}

/// The label pass by strategy, and the full decode.
fn strategies(a: &ArchiveFigures) -> String {
    let mut s = String::new();
    let file = a.baseline("graph-labelled.labels");
    let (Some(file), Some(reach), Some(labels)) = (file, a.phase("reach"), a.phase("labels"))
    else {
        return s;
    };
    if !a.strategies.is_empty() {
        s.push_str(
            "\n| label strategy | reach wall s | labels wall s | labels pass s | directories decoded | \
             bytes read | share of the labels file | pass / raw read of the file (time) | resolved identical |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let mut row = |name: &str, r: &Usage, l: &Usage, c: &dyn Fn(&str) -> u64, same: &str| {
            let pass = c("pass_micros") as f64 / 1e6;
            let _ = writeln!(
                s,
                "| {name} | {:.3} | {:.3} | {pass:.3} | {} | {} | {:.3} | {:.2} | {same} |",
                r.wall,
                l.wall,
                c("directories"),
                c("bytes_read"),
                c("bytes_read") as f64 / file.bytes.max(1) as f64,
                pass / file.seconds.max(1e-9),
            );
        };
        row(
            &format!("{} (as configured)", a.strategy),
            &reach.usage,
            &labels.usage,
            &|k| labels.count(k),
            "-",
        );
        for o in &a.strategies {
            let c = |k: &str| o.counts.get(k).copied().unwrap_or(0);
            row(
                &o.strategy,
                &o.reach,
                &o.labels,
                &c,
                if o.identical { "yes" } else { "NO" },
            );
        }
    }
    if !a.decode.is_empty() {
        s.push_str(
            "\n| full decode of the labels file (warm) | threads | seconds | MB/s | MB/s per core | \
             arcs per second | vs raw read from the page cache |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for d in &a.decode {
            let _ = writeln!(
                s,
                "| {} MB | {} | {:.3} | {:.0} | {:.0} | {:.3e} | {:.3} |",
                d.bytes / 1_000_000,
                d.threads,
                d.seconds,
                mb(d.bytes as f64 / d.seconds.max(1e-9)),
                mb(d.rate_per_core()),
                d.arcs as f64 / d.seconds.max(1e-9),
                d.raw_seconds / d.seconds.max(1e-9),
            );
        }
    }
    s
}

/// Wall seconds of the resolution phases (plan to walk) of `a`.
fn resolution_seconds(a: &ArchiveFigures) -> f64 {
    a.phases
        .iter()
        .filter(|p| {
            crate::model::Phase::from_name(&p.phase)
                .is_some_and(|ph| ph <= crate::model::Phase::Walk)
        })
        .map(|p| p.usage.wall)
        .sum()
}

/// The fitted model and the projections.
pub fn model(archives: &[ArchiveFigures], models: &[PhaseModel]) -> String {
    let mut s = String::new();
    let Some(largest) = archives.iter().max_by_key(|a| a.nodes) else {
        return s;
    };
    let cores = largest.machine.cores as f64;
    s.push_str(
        "| phase | driver | fixed s | s per million units | CPU s per million | bytes read per unit | \
         memory grows with | anon MB fixed | anon bytes per unit of memory's driver | parallel share |\n\
         |---|---|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for m in models {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.4} | {:.4} | {:.1} | {} | {:.1} | {} | {:.2} |",
            m.phase,
            m.driver.unit(),
            m.wall.fixed,
            m.wall.slope * 1e6,
            m.cpu.slope * 1e6,
            m.read.slope,
            m.memory_model.describe(),
            mb(m.anon.fixed),
            match m.memory_model {
                model::Memory::PerNode => format!("{:.2} per node", m.anon.slope),
                model::Memory::PerUnit(d) => format!("{:.2} per {}", m.anon.slope, d.unit()),
                _ => String::new(),
            },
            m.parallel
        );
    }
    let node = model::NODE;
    let targets = [1.0, 8.0, 32.0];
    let _ = writeln!(
        s,
        "\nProjection to the full archive ({:.1}e9 nodes, {:.1}e12 arcs) and Nemotron v1 ({:.0}e6 rows, \
         {:.0}e6 pairs), on nodes of {} cores reading {} per second:\n",
        model::full::NODES / 1e9,
        model::full::ARCS / 1e12,
        model::full::ROWS / 1e6,
        model::full::PAIRS / 1e6,
        node.cores,
        bytes(node.disk_rate)
    );
    s.push_str("| phase | driver at full scale | how | 1 node | 8 nodes | 32 nodes | peak anon memory |\n|---|---:|---|---:|---:|---:|---:|\n");
    let mut totals = [0.0; 3];
    for m in models {
        let t: Vec<f64> = targets
            .iter()
            .map(|&n| m.seconds(&node, cores, n))
            .collect();
        for (tot, x) in totals.iter_mut().zip(&t) {
            *tot += x;
        }
        let _ = writeln!(
            s,
            "| {} | {:.3e} {} | {} | {} | {} | {} | {} |",
            m.phase,
            m.full.0,
            m.driver.units(),
            m.full.1,
            duration(t[0]),
            duration(t[1]),
            duration(t[2]),
            bytes(m.memory())
        );
    }
    let _ = writeln!(
        s,
        "| **total** | | | **{}** | **{}** | **{}** | |",
        duration(totals[0]),
        duration(totals[1]),
        duration(totals[2])
    );
    // The random-access baseline against the resolution phases, size by size: its cost per
    // row grows with the archive (longer searches, more cache misses), the pipeline's less.
    let mut sorted: Vec<&ArchiveFigures> = archives.iter().collect();
    sorted.sort_by_key(|a| a.nodes);
    let trend: Vec<String> = sorted
        .iter()
        .filter_map(|a| {
            let r = a.random_access.as_ref()?;
            let rows = a.phase("plan")?.count("rows") as f64;
            let pipeline = resolution_seconds(a);
            Some(format!(
                "{:.2} ms per row, {:.1}x the pipeline ({})",
                r.per_row() * 1e3,
                r.per_row() * rows / pipeline.max(1e-9),
                a.name
            ))
        })
        .collect();
    if let Some(r) = &largest.random_access {
        let t = r.per_row() * model::full::ROWS / node.cores;
        let _ = writeln!(
            s,
            "\nPer-row random access (hop by hop through swh-graph): {}. At the largest archive's \
             rate, Nemotron's rows would take {} on one {}-core node, but only if every hop hit \
             memory: these graphs fit in RAM, the full one (16 TiB) does not, and each hop \
             becomes a storage read.",
            trend.join("; "),
            duration(t),
            node.cores
        );
    }
    s
}
