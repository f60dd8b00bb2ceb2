//! Near-duplicate detection with MinHash and locality-sensitive hashing, as BigCode
//! deduplicated The Stack: a file's set of word `shingle`-grams is summarised by
//! `permutations` minimum hashes; the signature is cut into `bands` of `rows` values, and two
//! files that agree on a whole band become candidates, kept as duplicates when their
//! signatures estimate a Jaccard similarity of at least `threshold`. Clusters are the
//! connected components of the kept pairs; each keeps one representative.
//!
//! Scaling: signatures are computed in parallel (rayon) and are all a later step needs;
//! candidate pairs are found band by band ([`band_pairs`]), so that bands can run as
//! separate jobs (a Slurm array over bands) whose pairs are unioned at the end.

use rayon::prelude::*;

/// Parameters of near-deduplication.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashOptions {
    /// Words per shingle (BigCode: 5).
    pub shingle: usize,
    /// Hash functions in a signature (BigCode: 256).
    pub permutations: usize,
    /// Bands (0: chosen from `threshold`, as datasketch chooses them).
    pub bands: usize,
    /// Estimated Jaccard similarity from which two files are duplicates (BigCode: 0.7).
    pub threshold: f64,
    /// Seed of the permutations: signatures of one run must share it.
    pub seed: u64,
}

impl Default for MinHashOptions {
    fn default() -> Self {
        Self {
            shingle: 5,
            permutations: 256,
            bands: 0,
            threshold: 0.7,
            seed: 42,
        }
    }
}

/// A MinHash signature.
pub type Signature = Vec<u32>;

/// The hash functions of one configuration.
pub struct MinHasher {
    shingle: usize,
    /// The permutations' multipliers (odd) and addends, in two arrays so that the minimum
    /// loop reads each as one vector.
    mul: Vec<u64>,
    add: Vec<u64>,
    bands: usize,
    rows: usize,
    threshold: f64,
}

/// splitmix64: the coefficients from the seed, reproducibly.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowers each `mins[j]` to the least hash of `shingles` under permutation `j`: the
/// multiply-shift hash (Dietzfelbinger et al.), the top 32 bits of `mul[j] x + add[j]` modulo
/// 2^64 with `mul[j]` odd, a 2-universal family that needs no 128-bit product or division.
///
/// This loop is most of a signature's cost (256 products per shingle), so it is compiled
/// three times and the widest the processor runs is chosen at run time: the same integer
/// arithmetic, so every machine computes the same signatures. With AVX2 each vector of four
/// 64-bit products is built from 32-bit multiplies (AVX2 has no 64-bit one), with AVX-512
/// eight at once (`vpmullq`); both beat the baseline x86-64's SSE2 (3.5x and 4.5x measured).
fn fold_mins(shingles: &[u64], mul: &[u64], add: &[u64], mins: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the processor has just been found to run these instructions.
            return unsafe { fold_mins_avx512(shingles, mul, add, mins) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { fold_mins_avx2(shingles, mul, add, mins) };
        }
    }
    fold_mins_portable(shingles, mul, add, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn fold_mins_avx512(shingles: &[u64], mul: &[u64], add: &[u64], mins: &mut [u32]) {
    fold_mins_portable(shingles, mul, add, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_mins_avx2(shingles: &[u64], mul: &[u64], add: &[u64], mins: &mut [u32]) {
    fold_mins_portable(shingles, mul, add, mins)
}

/// The loop itself, written so that it vectorises: it is inlined into each of the above and
/// compiled for its features.
#[inline(always)]
fn fold_mins_portable(shingles: &[u64], mul: &[u64], add: &[u64], mins: &mut [u32]) {
    for &x in shingles {
        for ((m, &a), &b) in mins.iter_mut().zip(mul).zip(add) {
            let v = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
            *m = (*m).min(v);
        }
    }
}

/// Probability that two sets of similarity `s` share a band of `r` rows among `b`.
fn candidate_probability(s: f64, b: usize, r: usize) -> f64 {
    1.0 - (1.0 - s.powi(r as i32)).powi(b as i32)
}

/// The bands and rows (`b * r <= permutations`) that weigh false positives below
/// `threshold` and false negatives above it equally least (datasketch's choice).
pub fn optimal_bands(threshold: f64, permutations: usize) -> (usize, usize) {
    let integrate = |f: &dyn Fn(f64) -> f64, lo: f64, hi: f64| {
        let n = 200;
        let step = (hi - lo) / n as f64;
        (0..n)
            .map(|i| f(lo + (i as f64 + 0.5) * step) * step)
            .sum::<f64>()
    };
    let mut best = (1, permutations.max(1), f64::INFINITY);
    for b in 1..=permutations {
        let r = permutations / b;
        if r == 0 {
            break;
        }
        let fp = integrate(&|s| candidate_probability(s, b, r), 0.0, threshold);
        let fneg = integrate(&|s| 1.0 - candidate_probability(s, b, r), threshold, 1.0);
        let err = 0.5 * fp + 0.5 * fneg;
        if err < best.2 {
            best = (b, r, err);
        }
    }
    (best.0, best.1)
}

impl MinHasher {
    /// The hash functions of `o`; `None` when the options cannot work (no permutation, no
    /// word per shingle, a threshold outside (0, 1], more bands than permutations).
    pub fn new(o: &MinHashOptions) -> Option<Self> {
        if o.shingle == 0
            || o.permutations == 0
            || !(o.threshold > 0.0 && o.threshold <= 1.0)
            || o.bands > o.permutations
        {
            return None;
        }
        let (bands, rows) = if o.bands == 0 {
            optimal_bands(o.threshold, o.permutations)
        } else {
            (o.bands, o.permutations / o.bands)
        };
        let mut state = o.seed;
        let (mul, add) = (0..o.permutations)
            .map(|_| (splitmix(&mut state) | 1, splitmix(&mut state)))
            .unzip();
        Some(Self {
            shingle: o.shingle,
            mul,
            add,
            bands,
            rows,
            threshold: o.threshold,
        })
    }

    /// Bands and rows per band.
    pub fn bands(&self) -> (usize, usize) {
        (self.bands, self.rows)
    }

    /// The bands `shard` owns, and the permutations it computes: its bands' rows, and for
    /// the last shard also the permutations no band uses (the similarity counts them).
    pub fn shard(
        &self,
        shard: crate::model::Shard,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let bands = shard.range(self.bands);
        let end = match shard.index + 1 == shard.count {
            true => self.mul.len(),
            false => bands.end * self.rows,
        };
        (bands.clone(), bands.start * self.rows..end)
    }

    /// The key of band `band` in a partial signature that starts at permutation `first`.
    pub fn band_key_at(&self, partial: &[u32], band: usize, first: usize) -> u64 {
        let at = band * self.rows - first;
        let rows = &partial[at..at + self.rows];
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// The signature of `text`: its words (runs of letters, digits and `_`), their
    /// `shingle`-grams hashed, each permutation's minimum. A text of fewer words than a
    /// shingle is one shingle of all of them.
    pub fn signature(&self, text: &str) -> Signature {
        self.signature_of(text, 0..self.mul.len())
    }

    /// The permutations `perms` of the signature of `text` (a shard of the bands computes
    /// only its own: their cost is most of a signature's).
    pub fn signature_of(&self, text: &str, perms: std::ops::Range<usize>) -> Signature {
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        // Each word hashed once; a shingle's hash is the hash of its words' hashes.
        let hashes: Vec<u64> = words
            .iter()
            .map(|w| xxhash_rust::xxh3::xxh3_64(w.as_bytes()))
            .collect();
        let n = hashes.len().saturating_sub(self.shingle) + 1;
        // Little-endian bytes, so that signatures are the same on every machine.
        let mut bytes: Vec<u8> = Vec::with_capacity(8 * self.shingle);
        let shingles: Vec<u64> = (0..n)
            .map(|i| {
                let end = (i + self.shingle).min(hashes.len());
                bytes.clear();
                bytes.extend(hashes[i..end].iter().flat_map(|h| h.to_le_bytes()));
                xxhash_rust::xxh3::xxh3_64(&bytes)
            })
            .collect();
        let mut mins = vec![u32::MAX; perms.len()];
        fold_mins(
            &shingles,
            &self.mul[perms.clone()],
            &self.add[perms],
            &mut mins,
        );
        mins
    }

    /// Signatures of many texts, in parallel.
    pub fn signatures<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Signature> {
        texts
            .par_iter()
            .map(|t| self.signature(t.as_ref()))
            .collect()
    }

    /// The threshold of estimated similarity.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Values per signature.
    pub fn permutations(&self) -> usize {
        self.mul.len()
    }

    /// The key of `sig`'s band `band`.
    pub fn band_key(&self, sig: &[u32], band: usize) -> u64 {
        self.band_key_at(sig, band, 0)
    }

    /// Estimated Jaccard similarity of two signatures.
    pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
        let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
        same as f64 / a.len().max(1) as f64
    }

    /// The pairs of documents (by index) that share band `band` and whose signatures reach
    /// the threshold, each pair once (lower index first). One band's work: memory is one key
    /// per document.
    pub fn band_pairs(&self, sigs: &[Signature], band: usize) -> Vec<(u32, u32)> {
        let mut keyed: Vec<(u64, u32)> = sigs
            .iter()
            .enumerate()
            .map(|(i, s)| (self.band_key(s, band), i as u32))
            .collect();
        keyed.sort_unstable();
        let mut pairs = Vec::new();
        for run in keyed.chunk_by(|x, y| x.0 == y.0) {
            // Each member against the run's first: a star links the whole run, and union
            // joins what the threshold keeps.
            let first = run[0].1;
            for &(_, d) in &run[1..] {
                if Self::similarity(&sigs[first as usize], &sigs[d as usize]) >= self.threshold {
                    pairs.push((first.min(d), first.max(d)));
                }
            }
        }
        pairs
    }

    /// The cluster of every document: the index of its representative (the lowest index of
    /// its cluster), from the pairs of every band.
    pub fn clusters(&self, sigs: &[Signature]) -> Vec<u32> {
        let pairs: Vec<(u32, u32)> = (0..self.bands)
            .into_par_iter()
            .flat_map_iter(|b| self.band_pairs(sigs, b))
            .collect();
        union(sigs.len(), &pairs)
    }
}

/// Connected components of `pairs` over `n` documents: each one's representative, the
/// lowest index of its component.
pub fn union(n: usize, pairs: &[(u32, u32)]) -> Vec<u32> {
    let mut sets = UnionFind::new(n);
    for &(a, b) in pairs {
        sets.union(a, b);
    }
    sets.representatives()
}

/// Disjoint sets of documents, each rooted at its lowest index (its representative). Memory:
/// one `u32` per document.
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    /// `n` documents, each alone.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let up = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = up;
            x = up;
        }
        x
    }

    /// Joins the sets of `a` and `b`.
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The lower index roots the merged component: it is the representative.
        match ra.cmp(&rb) {
            std::cmp::Ordering::Less => self.parent[rb as usize] = ra,
            std::cmp::Ordering::Greater => self.parent[ra as usize] = rb,
            std::cmp::Ordering::Equal => {}
        }
    }

    /// Every document's representative. Roots are lower than their members, so one pass in
    /// increasing order settles each document from its already settled parent.
    pub fn representatives(mut self) -> Vec<u32> {
        for x in 0..self.parent.len() {
            let p = self.parent[x] as usize;
            self.parent[x] = self.parent[p];
        }
        self.parent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Exact Jaccard similarity of the shingle sets, as the signatures estimate it.
    fn jaccard(a: &str, b: &str, k: usize) -> f64 {
        let set = |t: &str| -> HashSet<String> {
            let w: Vec<&str> = t
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            w.windows(k).map(|x| x.join(" ")).collect()
        };
        let (x, y) = (set(a), set(b));
        x.intersection(&y).count() as f64 / x.union(&y).count() as f64
    }

    /// The loop chosen at run time (AVX-512 or AVX2 on this machine, when it has them)
    /// gives the portable loop's minima, for lengths that fill no whole vector too.
    #[test]
    fn every_minimum_loop_agrees() {
        let mut s = 7u64;
        for (shingles, perms) in [(0, 8), (1, 1), (3, 7), (33, 37), (1000, 256), (5, 256)] {
            let xs: Vec<u64> = (0..shingles).map(|_| splitmix(&mut s)).collect();
            let mul: Vec<u64> = (0..perms).map(|_| splitmix(&mut s) | 1).collect();
            let add: Vec<u64> = (0..perms).map(|_| splitmix(&mut s)).collect();
            let mut chosen = vec![u32::MAX; perms];
            let mut portable = vec![u32::MAX; perms];
            fold_mins(&xs, &mul, &add, &mut chosen);
            fold_mins_portable(&xs, &mul, &add, &mut portable);
            assert_eq!(
                chosen, portable,
                "{shingles} shingles, {perms} permutations"
            );
            if shingles > 0 {
                assert!(portable.iter().any(|&m| m != u32::MAX));
            }
        }
    }

    /// A source file of `n` lines drawn from `seed`.
    fn source(seed: u64, n: usize) -> String {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let v = splitmix(&mut s);
                format!(
                    "let v{i} = compute_{}({}, {});\n",
                    v % 97,
                    v % 1013,
                    (v >> 20) % 71
                )
            })
            .collect()
    }

    /// `text` with every `every`-th line replaced.
    fn edited(text: &str, every: usize, seed: u64) -> String {
        let mut s = seed;
        text.lines()
            .enumerate()
            .map(|(i, l)| {
                if i % every == 0 {
                    format!("other_{} = {};\n", splitmix(&mut s) % 10_000, i)
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }

    #[test]
    fn planted_near_duplicates_cluster_and_distinct_files_stay_apart() {
        let h = MinHasher::new(&MinHashOptions::default()).unwrap();
        let base = source(1, 200);
        // Copies edited at several rates, with their true similarity to the base.
        let mut texts = vec![base.clone(), base.clone()];
        for every in [50, 20, 10, 4, 2] {
            texts.push(edited(&base, every, every as u64));
        }
        for seed in 2..8 {
            texts.push(source(seed, 200));
        }
        let sims: Vec<f64> = texts.iter().map(|t| jaccard(&base, t, 5)).collect();
        let sigs = h.signatures(&texts);
        let clusters = h.clusters(&sigs);
        for (i, s) in sims.iter().enumerate() {
            // Far from the threshold on either side, LSH with 256 permutations is all but
            // certain; near it, either answer is right.
            if *s >= 0.8 {
                assert_eq!(clusters[i], 0, "doc {i}, similarity {s:.2}: {clusters:?}");
            } else if *s <= 0.55 {
                assert_ne!(clusters[i], 0, "doc {i}, similarity {s:.2}: {clusters:?}");
            }
        }
        assert!(
            sims[2] >= 0.8 && sims[6] <= 0.55,
            "the plants span the threshold: {sims:?}"
        );
        // Distinct files are their own clusters.
        for (i, c) in clusters.iter().enumerate().skip(7) {
            assert_eq!(*c, i as u32);
        }
        // Bands are independent: their pairs unioned give the same clusters.
        let (bands, _) = h.bands();
        let pairs: Vec<(u32, u32)> = (0..bands).flat_map(|b| h.band_pairs(&sigs, b)).collect();
        assert_eq!(union(texts.len(), &pairs), clusters);
    }

    #[test]
    fn signatures_estimate_jaccard_and_options_are_checked() {
        let h = MinHasher::new(&MinHashOptions::default()).unwrap();
        let base = source(9, 300);
        let copy = edited(&base, 5, 3);
        let est = MinHasher::similarity(&h.signature(&base), &h.signature(&copy));
        let real = jaccard(&base, &copy, 5);
        assert!(
            (est - real).abs() < 0.1,
            "estimate {est:.3}, real {real:.3}"
        );
        assert_eq!(
            h.signature(""),
            h.signature("  \n"),
            "no word: one empty shingle"
        );
        let (b, r) = optimal_bands(0.7, 256);
        assert!(b * r <= 256 && b > 1 && r > 1, "{b} x {r}");
        for bad in [
            MinHashOptions {
                permutations: 0,
                ..Default::default()
            },
            MinHashOptions {
                shingle: 0,
                ..Default::default()
            },
            MinHashOptions {
                threshold: 1.5,
                ..Default::default()
            },
            MinHashOptions {
                bands: 300,
                ..Default::default()
            },
        ] {
            assert!(MinHasher::new(&bad).is_none(), "{bad:?}");
        }
    }
}
