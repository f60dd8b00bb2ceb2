//! A cost model per phase, fitted on the archives benchmarked, and its projection to the
//! full archive and Nemotron v1.
//!
//! Each phase's cost is taken to grow with one driver (per row, per pair, per node, per
//! reachable directory, ...): `cost = fixed + per_unit * driver`, fitted by least squares
//! over the archives (wall time, CPU time, bytes read and peak anonymous memory each get
//! their own line). The full-scale value of each driver is either known (nodes, arcs, rows,
//! pairs) or scaled from the largest archive benchmarked; [`Driver::full_scale`] says which.
//!
//! Time on a machine with P cores: the share `f` of a phase that ran in parallel is read off
//! the measurement (CPU time over wall time, on the cores measured), and Amdahl's law gives
//! `wall * ((1 - f) + f * cores / P)`; a phase can never beat reading its bytes at the node's
//! storage rate. On N Slurm nodes, the sharded phases divide by N, the others do not.

use super::figures::ArchiveFigures;
use crate::model::Phase;

/// The full archive (2026-06-04 export) and Nemotron code v1.
pub mod full {
    /// Nodes of the graph.
    pub const NODES: f64 = 58.7e9;
    /// Arcs of the graph.
    pub const ARCS: f64 = 1.1e12;
    /// Bytes of `graph-labelled.labels`.
    pub const LABEL_BYTES: f64 = 4.3e12;
    /// Directories (about 40% of the nodes).
    pub const DIRECTORIES: f64 = 0.4 * NODES;
    /// Metadata rows.
    pub const ROWS: f64 = 623e6;
    /// Distinct (repository, prefix) pairs.
    pub const PAIRS: f64 = 75e6;
}

/// What a phase's cost grows with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Metadata rows.
    Rows,
    /// Distinct (repository, prefix) pairs.
    Pairs,
    /// Distinct path components.
    Components,
    /// Graph nodes.
    Nodes,
    /// Directories the reachable set marked.
    Directories,
    /// Bytes of the labels file decoded.
    LabelBytes,
    /// Rows of the ORC content tables read.
    ContentRows,
    /// Blobs wanted by the fetch.
    Blobs,
}

impl Driver {
    /// The driver of `phase`.
    pub fn of(phase: Phase) -> Driver {
        match phase {
            Phase::Plan | Phase::Walk | Phase::Export | Phase::Dataset => Driver::Rows,
            Phase::Names => Driver::Components,
            Phase::Scan => Driver::Nodes,
            Phase::Match => Driver::Pairs,
            Phase::Reach => Driver::Directories,
            Phase::Labels => Driver::LabelBytes,
            Phase::Content => Driver::ContentRows,
            Phase::Fetch => Driver::Blobs,
        }
    }

    /// Its name, as a unit ("per row").
    pub fn unit(self) -> &'static str {
        match self {
            Driver::Rows => "row",
            Driver::Pairs => "pair",
            Driver::Components => "path component",
            Driver::Nodes => "node",
            Driver::Directories => "reachable directory",
            Driver::LabelBytes => "label byte",
            Driver::ContentRows => "ORC content row",
            Driver::Blobs => "blob",
        }
    }

    /// Its name in the plural.
    pub fn units(self) -> &'static str {
        match self {
            Driver::Rows => "rows",
            Driver::Pairs => "pairs",
            Driver::Components => "path components",
            Driver::Nodes => "nodes",
            Driver::Directories => "reachable directories",
            Driver::LabelBytes => "label bytes",
            Driver::ContentRows => "ORC content rows",
            Driver::Blobs => "blobs",
        }
    }

    /// Its value on a benchmarked archive.
    pub fn value(self, a: &ArchiveFigures) -> f64 {
        let count = |phase: &str, key: &str| a.phase(phase).map_or(0, |p| p.count(key)) as f64;
        match self {
            Driver::Rows => count("plan", "rows"),
            Driver::Pairs => count("plan", "pairs"),
            Driver::Components => count("plan", "components"),
            Driver::Nodes => a.nodes as f64,
            Driver::Directories => count("reach", "directories"),
            Driver::LabelBytes => count("labels", "bytes_read"),
            Driver::ContentRows => count("content", "orc_rows_read"),
            Driver::Blobs => count("fetch", "wanted"),
        }
    }

    /// Its value at full scale, scaled from `largest` where it is not known, and how.
    pub fn full_scale(self, largest: &ArchiveFigures) -> (f64, String) {
        let per = |num: Driver, den: f64| num.value(largest) / den.max(1.0);
        let rows = Driver::Rows.value(largest);
        let pairs = Driver::Pairs.value(largest);
        match self {
            Driver::Rows => (full::ROWS, "Nemotron v1 rows".into()),
            Driver::Pairs => (full::PAIRS, "Nemotron v1 pairs".into()),
            Driver::Nodes => (full::NODES, "nodes of the 2026-06-04 export".into()),
            Driver::Components => {
                let r = per(Driver::Components, rows);
                (
                    r * full::ROWS,
                    format!("{r:.3} distinct components per row, as in the largest archive"),
                )
            }
            Driver::Directories => {
                let r = per(Driver::Directories, pairs);
                (
                    (r * full::PAIRS).min(full::DIRECTORIES),
                    format!("{r:.0} reachable directories per pair, as in the largest archive (at most 40% of nodes)"),
                )
            }
            Driver::LabelBytes => {
                let dirs = Driver::Directories.value(largest);
                let r = per(Driver::LabelBytes, dirs);
                let projected_dirs = Driver::Directories.full_scale(largest).0;
                (
                    (r * projected_dirs).min(full::LABEL_BYTES),
                    format!("{r:.0} label bytes per reachable directory (at most the 4.3 TB file)"),
                )
            }
            Driver::ContentRows => {
                let r = per(Driver::ContentRows, largest.nodes as f64);
                (
                    r * full::NODES,
                    format!("{r:.2} content rows per node, as in the largest archive"),
                )
            }
            Driver::Blobs => {
                let r = per(Driver::Blobs, rows);
                (
                    r * full::ROWS,
                    format!("{r:.2} blobs per row, as in the largest archive"),
                )
            }
        }
    }
}

/// Peak memory of an external sort over its budget: the budget counts the records' bytes,
/// not the allocator's overhead on them (1.40x measured on 20e6 rows with 256 MB and 1 GB).
pub const SORT_OVERHEAD: f64 = 1.4;

/// What a phase's peak memory grows with: its design, checked against the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Bounded by the external sorts' budget (`options.sort_memory_mb`) plus a constant:
    /// the phase streams its input in chunks.
    SortBudget,
    /// Bounded by a batch or chunk of fixed size: the largest value measured.
    Constant,
    /// Bit-vectors over the graph's nodes.
    PerNode,
    /// Grows with a count (a table held in memory).
    PerUnit(Driver),
}

impl Memory {
    /// The memory model of `phase`.
    pub fn of(phase: Phase) -> Memory {
        match phase {
            Phase::Plan | Phase::Names | Phase::Scan => Memory::SortBudget,
            // One batch of rows; one chunk of pairs and the histories of the groups in flight.
            Phase::Walk | Phase::Match => Memory::Constant,
            Phase::Reach | Phase::Labels => Memory::PerNode,
            // The join map and the fetch's index hold one entry per distinct content wanted.
            Phase::Content | Phase::Fetch | Phase::Export => Memory::PerUnit(Driver::Blobs),
            // The sort budget, and a cluster id and a bit per candidate row.
            Phase::Dataset => Memory::SortBudget,
        }
    }

    /// How it is stated in the report.
    pub fn describe(self) -> &'static str {
        match self {
            Memory::SortBudget => "constant + sort budget",
            Memory::Constant => "constant (a batch)",
            Memory::PerNode => "bits per node",
            Memory::PerUnit(Driver::Pairs) => "per pair",
            Memory::PerUnit(Driver::Blobs) => "per distinct blob wanted",
            Memory::PerUnit(Driver::Rows) => "per row",
            Memory::PerUnit(_) => "per unit",
        }
    }
}

/// `y = fixed + slope * x`, fitted by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// The cost at zero.
    pub fixed: f64,
    /// The cost per unit.
    pub slope: f64,
}

impl Line {
    /// The least-squares line through `points`; through the origin with one point. A cost
    /// does not shrink as its driver grows, nor is it negative at zero: a fit that says so is
    /// noise, and the line through the origin and the largest point (an upper bound for a
    /// cost with a fixed part) replaces it.
    pub fn fit(points: &[(f64, f64)]) -> Line {
        let n = points.len() as f64;
        if points.is_empty() {
            return Line {
                fixed: 0.0,
                slope: 0.0,
            };
        }
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if points.len() < 2 || sxx <= 0.0 {
            return Line {
                fixed: 0.0,
                slope: if mx > 0.0 { my / mx } else { 0.0 },
            };
        }
        let slope = sxy / sxx;
        let fixed = my - slope * mx;
        if slope <= 0.0 || fixed < 0.0 {
            // Noise (fixed costs that dominate small archives): fall back to the upper
            // bound that the largest archive gives, cost proportional to the driver.
            let (x, y) = points
                .iter()
                .copied()
                .fold((0.0, 0.0), |m, p| if p.0 > m.0 { p } else { m });
            return Line {
                fixed: 0.0,
                slope: if x > 0.0 { y / x } else { 0.0 },
            };
        }
        Line { fixed, slope }
    }

    /// As [`Line::fit`], but a fit that is noise gives the largest value measured, flat:
    /// a process's memory has a fixed part (code, allocator, buffers) that a line through
    /// the origin would scale up with the driver.
    pub fn fit_memory(points: &[(f64, f64)]) -> Line {
        let line = Line::fit(points);
        if points.len() >= 2 && line.fixed == 0.0 {
            let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
            // The line through the smallest and the largest archive, if it rises and stays
            // positive at zero; otherwise the largest value, flat.
            let first =
                points.iter().copied().fold(
                    (f64::INFINITY, 0.0),
                    |m, p| {
                        if p.0 < m.0 {
                            p
                        } else {
                            m
                        }
                    },
                );
            let last = points
                .iter()
                .copied()
                .fold((0.0, 0.0), |m, p| if p.0 > m.0 { p } else { m });
            let slope = if last.0 > first.0 {
                (last.1 - first.1) / (last.0 - first.0)
            } else {
                0.0
            };
            let fixed = last.1 - slope * last.0;
            if slope > 0.0 && fixed >= 0.0 {
                return Line { fixed, slope };
            }
            return Line {
                fixed: max,
                slope: 0.0,
            };
        }
        line
    }

    /// The line's value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.fixed + self.slope * x
    }
}

/// Assumptions of the projection.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Cores of one node.
    pub cores: f64,
    /// Sequential read rate of one node's storage, bytes per second.
    pub disk_rate: f64,
}

/// The default target: one 64-core node reading at 4 GB/s (an NVMe array or a parallel
/// file system's share).
pub const NODE: Target = Target {
    cores: 64.0,
    disk_rate: 4e9,
};

/// A phase's fitted model and projection.
#[derive(Debug, Clone)]
pub struct PhaseModel {
    /// The phase.
    pub phase: Phase,
    /// Its driver.
    pub driver: Driver,
    /// Wall seconds on the machine measured.
    pub wall: Line,
    /// CPU seconds.
    pub cpu: Line,
    /// Bytes read from storage.
    pub read: Line,
    /// Peak anonymous memory, bytes, against [`PhaseModel::memory_model`]'s driver.
    pub anon: Line,
    /// What the memory grows with.
    pub memory_model: Memory,
    /// The largest peak anonymous memory measured, bytes.
    pub anon_max: f64,
    /// The smallest, bytes.
    pub anon_min: f64,
    /// The storage's sequential read rate where it was measured, bytes per second.
    pub measured_disk_rate: f64,
    /// The sort budget the phases ran with, bytes.
    pub sort_budget: f64,
    /// The memory's driver at full scale (the time's when they are the same).
    pub memory_full: (f64, String),
    /// Share of the work that ran in parallel, from the largest archive.
    pub parallel: f64,
    /// The driver at full scale, and how it was obtained.
    pub full: (f64, String),
}

impl PhaseModel {
    /// Seconds at full scale on `nodes` nodes like `target`.
    pub fn seconds(&self, target: &Target, measured_cores: f64, nodes: f64) -> f64 {
        let x = self.full.0;
        let read = self.read.at(x);
        // Reading at the measured storage rate is not computing: only the rest scales with
        // cores, and the reading scales with the target's storage.
        let compute = (self.wall.at(x) - read / self.measured_disk_rate).max(0.0);
        let amdahl = (1.0 - self.parallel) + self.parallel * measured_cores / target.cores;
        let one = (compute * amdahl).max(read / target.disk_rate);
        if self.phase.sharding().is_some() {
            one / nodes.max(1.0)
        } else {
            one
        }
    }

    /// Peak anonymous memory at full scale, bytes.
    pub fn memory(&self) -> f64 {
        match self.memory_model {
            // The smallest archive's peak (no sort buffer filled there) plus the whole budget
            // with the allocator's overhead on the records (measured on 20e6 rows).
            Memory::SortBudget => self.anon_min + SORT_OVERHEAD * self.sort_budget,
            Memory::Constant => self.anon_max,
            // By design one bit per node (the reachable set, or the shard's window of it).
            Memory::PerNode => self.anon_min + full::NODES / 8.0,
            Memory::PerUnit(_) => self.anon.at(self.memory_full.0),
        }
    }
}

/// Fits every phase present in `archives` (sorted by size); `None` without archives.
pub fn fit(archives: &[ArchiveFigures]) -> Option<Vec<PhaseModel>> {
    let largest = archives.iter().max_by_key(|a| a.nodes)?;
    let cores = largest.machine.cores.max(1) as f64;
    let disk_rate = Some(largest.disk_rate())
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(NODE.disk_rate);
    let mut out = Vec::new();
    for phase in Phase::ALL {
        let driver = Driver::of(phase);
        let points = |f: &dyn Fn(&super::figures::PhaseFigures) -> f64| -> Vec<(f64, f64)> {
            archives
                .iter()
                .filter_map(|a| a.phase(phase.name()).map(|p| (driver.value(a), f(p))))
                .collect()
        };
        let wall = points(&|p| p.usage.wall);
        if wall.is_empty() {
            continue;
        }
        let memory_model = Memory::of(phase);
        let anon: Vec<(f64, f64)> = archives
            .iter()
            .filter_map(|a| {
                let p = a.phase(phase.name())?;
                let x = match memory_model {
                    Memory::PerNode => a.nodes as f64,
                    Memory::PerUnit(d) => d.value(a),
                    Memory::SortBudget | Memory::Constant => driver.value(a),
                };
                Some((x, p.usage.max_anon as f64))
            })
            .collect();
        let parallel = largest.phase(phase.name()).map_or(0.0, |p| {
            // CPU time over the time not spent reading at the storage's rate.
            let reading = p.usage.storage_read as f64 / disk_rate;
            let computing = (p.usage.wall - reading).max(p.usage.wall * 0.05);
            let ratio = (p.usage.user + p.usage.system) / computing.max(1e-9);
            if cores > 1.0 {
                ((ratio - 1.0) / (cores - 1.0)).clamp(0.0, 1.0)
            } else {
                0.0
            }
        });
        out.push(PhaseModel {
            phase,
            driver,
            wall: Line::fit(&wall),
            cpu: Line::fit(&points(&|p| p.usage.user + p.usage.system)),
            read: Line::fit(&points(&|p| p.usage.storage_read as f64)),
            anon: Line::fit_memory(&anon),
            anon_max: anon.iter().map(|p| p.1).fold(0.0, f64::max),
            anon_min: anon.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
            measured_disk_rate: disk_rate,
            memory_model,
            sort_budget: largest.sort_memory_mb as f64 * 1048576.0,
            parallel,
            full: driver.full_scale(largest),
            memory_full: match memory_model {
                Memory::PerUnit(d) => d.full_scale(largest),
                _ => driver.full_scale(largest),
            },
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_exact_points_and_refuse_negative_slopes() {
        let l = Line::fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!((l.slope - 2.0).abs() < 1e-9 && (l.fixed - 1.0).abs() < 1e-9);
        let flat = Line::fit(&[(1.0, 5.0), (10.0, 4.0)]);
        assert_eq!(flat.fixed, 0.0);
        assert!(
            (flat.at(20.0) - 8.0).abs() < 1e-9,
            "proportional to the largest point"
        );
        let one = Line::fit(&[(10.0, 5.0)]);
        assert!(
            (one.at(20.0) - 10.0).abs() < 1e-9,
            "proportional with one point"
        );
    }

    fn line(fixed: f64, slope: f64) -> Line {
        Line { fixed, slope }
    }

    fn model(phase: Phase, memory_model: Memory) -> PhaseModel {
        PhaseModel {
            phase,
            driver: Driver::of(phase),
            // 100 s at full scale, 40 of them reading 4e10 bytes at the measured 1e9 B/s.
            wall: line(0.0, 100.0 / 1e6),
            cpu: line(0.0, 100.0 / 1e6),
            read: line(0.0, 4e10 / 1e6),
            anon: line(10e6, 2.0),
            memory_model,
            anon_max: 50e6,
            anon_min: 10e6,
            measured_disk_rate: 1e9,
            sort_budget: 1e9,
            parallel: 1.0,
            full: (1e6, String::new()),
            memory_full: (3e6, String::new()),
        }
    }

    #[test]
    fn projection_scales_computing_by_cores_and_reading_by_storage() {
        let target = Target {
            cores: 4.0,
            disk_rate: 4e9,
        };
        // Walk (not sharded): 60 s of computing on 2 cores -> 30 s on 4; reading 4e10 bytes at
        // 4e9 B/s is 10 s; the longer counts, and more nodes do not help.
        let m = model(Phase::Walk, Memory::Constant);
        assert!((m.seconds(&target, 2.0, 1.0) - 30.0).abs() < 1e-6);
        assert!((m.seconds(&target, 2.0, 8.0) - 30.0).abs() < 1e-6);
        // Labels (sharded by node range): divided among nodes.
        let l = model(Phase::Labels, Memory::PerNode);
        assert!((l.seconds(&target, 2.0, 3.0) - 10.0).abs() < 1e-6);
        // Serial work does not scale with cores.
        let serial = PhaseModel {
            parallel: 0.0,
            ..model(Phase::Walk, Memory::Constant)
        };
        assert!((serial.seconds(&target, 2.0, 1.0) - 60.0).abs() < 1e-6);
    }

    #[test]
    fn memory_follows_each_phase_design() {
        let sort = model(Phase::Plan, Memory::SortBudget);
        assert!((sort.memory() - (10e6 + SORT_OVERHEAD * 1e9)).abs() < 1.0);
        assert_eq!(model(Phase::Walk, Memory::Constant).memory(), 50e6);
        let bits = model(Phase::Reach, Memory::PerNode).memory();
        assert!((bits - (10e6 + full::NODES / 8.0)).abs() < 1.0);
        // Per unit: the memory's own driver at full scale, not the time's.
        let per = model(Phase::Content, Memory::PerUnit(Driver::Blobs)).memory();
        assert!((per - (10e6 + 2.0 * 3e6)).abs() < 1.0);
    }

    #[test]
    fn memory_fits_never_scale_a_fixed_part_up() {
        // Noise (the smaller archive allocated more) gives the largest value, flat.
        let l = Line::fit_memory(&[(1e6, 80e6), (1e7, 75e6)]);
        assert_eq!((l.fixed, l.slope), (80e6, 0.0));
        // Growth with a fixed part keeps both.
        let g = Line::fit_memory(&[(1e6, 12e6), (2e6, 14e6), (4e6, 18e6)]);
        assert!((g.slope - 2.0).abs() < 1e-9 && (g.fixed - 10e6).abs() < 1.0);
    }
}
