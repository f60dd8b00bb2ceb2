//! What the generator knows of the archive it made: origins and their visits, and for each
//! family its commits (ids, parents, whether archived). The rows and their expected answers
//! are computed from this model, never from the graph.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::hashes::Sha1Id;
use crate::model::slug::{normalize_slug, normalize_url};

use super::family::{FamilySpec, ForkSpec, NONE};
use super::names::{recase, Vocabulary};

/// A branch head of a visit's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The commit (family-local index).
    pub commit: u32,
    /// Reached through an annotated tag (one hop further from the snapshot).
    pub via_release: bool,
}

/// A visit of an origin.
#[derive(Debug, Clone)]
pub struct VisitModel {
    /// The family whose history the snapshot names.
    pub family: u32,
    /// The snapshot id.
    pub snapshot: Sha1Id,
    /// Its branch heads.
    pub heads: Vec<Head>,
}

/// An origin.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Its URL, as archived.
    pub url: String,
    /// The slug a user would write for it (`owner/name`).
    pub slug: String,
    /// Its visits, in time order.
    pub visits: Vec<VisitModel>,
}

/// A played family, as the later passes need it.
#[derive(Debug, Clone, Default)]
pub struct FamilyModel {
    /// Commit ids, by family-local index.
    pub ids: Vec<Sha1Id>,
    /// Parents (`NONE` when absent).
    pub parents: Vec<[u32; 2]>,
    /// Whether some visit archived the commit.
    pub archived: Vec<bool>,
    /// Target commit of each annotated tag.
    pub releases: Vec<u32>,
}

/// The whole synthetic world.
pub struct World {
    /// Every origin.
    pub origins: Vec<Origin>,
    /// Every family's spec.
    pub specs: Vec<FamilySpec>,
    /// Every family's model (filled by the first pass).
    pub families: Vec<FamilyModel>,
    /// Normalised slugs in use.
    taken: HashSet<String>,
    /// Commits submodules may point at.
    pub submodule_targets: Rc<Vec<Sha1Id>>,
}

/// How the size of a world is chosen.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Commits of the largest histories.
    pub max_commits: u32,
}

fn pareto(rng: &mut ChaCha8Rng, min: f64, alpha: f64) -> f64 {
    min / rng.random::<f64>().max(1e-12).powf(1.0 / alpha)
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    // Knuth's method: means here are small.
    let l = (-mean).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// `n` distinct sorted ticks in `lo..=hi`, the last one at `hi`.
fn spread(rng: &mut ChaCha8Rng, n: u32, lo: u32, hi: u32) -> Vec<u32> {
    let mut out = vec![hi];
    for _ in 1..n {
        out.push(rng.random_range(lo..=hi));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The ticks a family's upstream is visited at.
fn plan_visits(rng: &mut ChaCha8Rng, ticks: u32, recased: bool) -> Vec<u32> {
    // Long, active histories are revisited (one visit per ~2,000 commits here), as SWH
    // revisits active repositories; this also bounds the commits made but not archived
    // yet that the generator holds (their trees wait for the next visit).
    let n_visits = 1 + poisson(rng, 1.5).min(6) + recased as u32 + ticks / 2000;
    let last = if ticks <= 2 {
        ticks - 1
    } else {
        let tail = ((ticks - 1) / 5).min(2000);
        rng.random_range(ticks - 1 - tail..=ticks - 1)
    };
    let mut visits = spread(rng, n_visits, 0, last);
    if recased && visits.len() < 2 && last > 0 {
        visits.insert(0, 0);
    }
    visits
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self {
            origins: Vec::new(),
            specs: Vec::new(),
            families: Vec::new(),
            taken: HashSet::new(),
            submodule_targets: Rc::new(Vec::new()),
        }
    }

    fn new_origin(&mut self, url: String, slug: String) -> u32 {
        self.origins.push(Origin {
            url,
            slug,
            visits: Vec::new(),
        });
        self.origins.len() as u32 - 1
    }

    /// A slug not used yet (normalised).
    fn fresh_slug(
        &mut self,
        rng: &mut ChaCha8Rng,
        vocab: &Vocabulary,
        name: Option<&str>,
    ) -> String {
        loop {
            let owner = vocab.owner(rng);
            let repo = name.map_or_else(|| vocab.repo_name(rng), str::to_string);
            let slug = format!("{owner}/{repo}");
            if self.taken.insert(normalize_slug(&slug)) {
                return slug;
            }
            if name.is_some() && rng.random_bool(0.5) {
                // The fork's owner name is taken for this repository name: vary the owner.
                let slug = format!("{owner}{}/{repo}", rng.random_range(0..1000));
                if self.taken.insert(normalize_slug(&slug)) {
                    return slug;
                }
            }
        }
    }

    /// A slug no origin has, for rows that must not find one.
    pub fn ghost_slug(&self, rng: &mut ChaCha8Rng, vocab: &Vocabulary) -> String {
        loop {
            let slug = format!("{}/{}", vocab.owner(rng), vocab.repo_name(rng));
            if !self.taken.contains(&normalize_slug(&slug)) {
                return slug;
            }
        }
    }

    /// Draws the next family: its size, history, forks, origins and visits. `giant` forces
    /// the largest history.
    pub fn plan_family(
        &mut self,
        rng: &mut ChaCha8Rng,
        vocab: &Vocabulary,
        shape: &Shape,
        giant: bool,
    ) -> FamilySpec {
        let family = self.specs.len() as u32;
        // Rare features, and at least one of each in every world (families 2, 3 and 12).
        let reuse = family > 10 && (family == 12 || rng.random_bool(0.01));
        let recased = !reuse && (family == 2 || rng.random_bool(0.015));
        let dotgit = family == 3 || rng.random_bool(0.02);
        let max = shape.max_commits.max(2);
        let ticks = if giant {
            max
        } else {
            (pareto(rng, 2.0, 0.9) as u32).clamp(1, (max / 4).max(1))
        };
        // A renamed repository was visited under each name.
        let ticks = if recased {
            ticks.max(4).min(max)
        } else {
            ticks
        };
        let initial_files = if giant {
            rng.random_range(2000..8000)
        } else {
            ((40.0 * (1.2 * normal(rng)).exp()) as u32).clamp(1, 20_000)
        };
        // Histories span at most 12 years.
        let interval = (86_400.0 * (0.8 * normal(rng)).exp()) as i64;
        let interval = interval.min(12 * 365 * 86_400 / ticks.max(1) as i64).max(1);
        let span = interval * ticks as i64;
        let mut start = 1_230_000_000 + rng.random_range(0..(13 * 365 * 86_400 - span).max(1));

        // Upstream origins: usually one; a reused slug (the name of an earlier, older
        // repository) or a re-cased rename (two spellings, each visited) now and then.
        let upstream_origin = if reuse {
            let earlier = rng.random_range(0..family) as usize;
            let o = self.specs[earlier].upstream.last().map_or(0, |x| x.0);
            // The new repository comes after the old one's visits.
            let old = &self.specs[earlier];
            start = start.max(old.start + old.interval * old.ticks as i64 + 30 * 86_400);
            o
        } else {
            let slug = self.fresh_slug(rng, vocab, None);
            let url = if dotgit {
                format!("https://github.com/{slug}.git")
            } else {
                format!("https://github.com/{slug}")
            };
            self.new_origin(url, slug)
        };
        let visits = plan_visits(rng, ticks, recased);
        let mut upstream = vec![(upstream_origin, 0)];
        if recased && visits.len() >= 2 {
            let split = visits[visits.len() / 2];
            let old = &self.origins[upstream_origin as usize];
            let (owner, name) = old.slug.split_once('/').unwrap_or(("x", "y"));
            let spelled = format!("{}/{}", recase(rng, owner), recase(rng, name));
            let url = format!("https://github.com/{spelled}");
            if normalize_url(&url) == normalize_url(&old.url) && url != old.url {
                // The first spelling until the rename, the second from then on.
                let renamed = self.new_origin(url, spelled);
                upstream = vec![(upstream_origin, 0), (renamed, split)];
            }
        }

        let forks = self.plan_forks(rng, vocab, upstream_origin, ticks, giant);

        let spec = FamilySpec {
            seed: rng.random(),
            language: vocab.language(rng),
            start,
            interval,
            ticks,
            initial_files,
            default_branch: if rng.random_bool(0.6) {
                "main"
            } else {
                "master"
            },
            upstream,
            visits,
            forks,
            submodule_targets: self.submodule_targets.clone(),
        };
        self.specs.push(spec.clone());
        spec
    }

    /// Forks of a family of `ticks` commits upstream at `upstream_origin`: when each
    /// branches off, its own commits, origin and visits.
    fn plan_forks(
        &mut self,
        rng: &mut ChaCha8Rng,
        vocab: &Vocabulary,
        upstream_origin: u32,
        ticks: u32,
        giant: bool,
    ) -> Vec<ForkSpec> {
        let n_forks = if giant {
            rng.random_range(5..30)
        } else if rng.random_bool(0.8) {
            0
        } else {
            (pareto(rng, 1.0, 1.2) as u32).min(40)
        };
        let name = self.origins[upstream_origin as usize]
            .slug
            .split_once('/')
            .map_or("repo".to_string(), |x| x.1.to_string());
        (0..n_forks)
            .map(|_| {
                let at = rng.random_range(0..ticks);
                let commits = if rng.random_bool(0.4) {
                    0
                } else {
                    (pareto(rng, 1.0, 1.1) as u32).min(500).min(ticks - at)
                };
                let slug = self.fresh_slug(rng, vocab, Some(&name));
                let origin = self.new_origin(format!("https://github.com/{slug}"), slug);
                let n = 1 + poisson(rng, 0.7).min(4);
                ForkSpec {
                    origin,
                    at,
                    commits,
                    visits: spread(rng, n, at, ticks - 1),
                }
            })
            .collect()
    }

    /// Records the model of the family just played, and offers its first archived commit as
    /// a submodule target to later families.
    pub fn add_family(&mut self, model: FamilyModel) {
        if let Some(i) = model.archived.iter().position(|&a| a) {
            if self.submodule_targets.len() < 1000 {
                let mut t = (*self.submodule_targets).clone();
                t.push(model.ids[i]);
                self.submodule_targets = Rc::new(t);
            }
        }
        self.families.push(model);
    }

    /// The commits reachable from `origin`'s snapshots: `(family, commit)`.
    pub fn history(&self, origin: u32) -> Vec<(u32, u32)> {
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut stack: Vec<(u32, u32)> = Vec::new();
        for v in &self.origins[origin as usize].visits {
            for h in &v.heads {
                if seen.insert((v.family, h.commit)) {
                    stack.push((v.family, h.commit));
                }
            }
        }
        while let Some((f, c)) = stack.pop() {
            for &p in &self.families[f as usize].parents[c as usize] {
                if p != NONE && seen.insert((f, p)) {
                    stack.push((f, p));
                }
            }
        }
        let mut out: Vec<(u32, u32)> = seen.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// Origins by normalised URL.
    pub fn origins_by_url(&self) -> HashMap<String, Vec<u32>> {
        let mut out: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, o) in self.origins.iter().enumerate() {
            if !o.visits.is_empty() {
                out.entry(normalize_url(&o.url)).or_default().push(i as u32);
            }
        }
        out
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
