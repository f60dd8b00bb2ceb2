//! The label pass's decoder against the reference one (dsi-bitstream's γ reader with the
//! forward graph's successors), on every node of real graphs: the demo archive, a synthetic
//! archive and SWH's example dataset.

mod common;

use std::path::Path;

use common::*;
use dsi_bitstream::prelude::*;
use unearth::artifacts::bits::Bits;
use unearth::artifacts::entries::Entry;
use unearth::artifacts::flat::{FlatFile, FlatWriter};
use unearth::graph::labels::{decode_labels, decode_node, LabelFile};
use unearth::phases::labels::{pass, Wanted};

/// Every node's labels as `(successor, label)`, in order, by the reference decoder.
fn reference(labels: &LabelFile) -> Vec<Vec<(usize, u64)>> {
    let bytes = std::fs::read(labels.path()).unwrap();
    let mut words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            let mut a = [0u8; 4];
            a[..c.len()].copy_from_slice(c);
            u32::from_ne_bytes(a)
        })
        .collect();
    words.extend([0; 4]);
    let mut r = BufBitReader::<BE, _>::new(MemWordReader::new(&words[..]));
    (0..labels.nodes())
        .map(|n| {
            let (s, e) = labels.bits(n);
            r.set_bit_pos(s).unwrap();
            let mut got = Vec::new();
            decode_node(
                &mut r,
                n,
                e - s,
                labels.successors(n),
                labels.width(),
                |succ, v| got.push((succ, v)),
            )
            .unwrap();
            assert_eq!(r.bit_pos().unwrap(), e, "node {n}");
            got
        })
        .collect()
}

/// Checks the fast decoder node by node, then the parallel pass over every node with every
/// other name wanted, against the reference.
fn decoders_agree(base: &Path) -> u64 {
    let labels = LabelFile::open(base).unwrap();
    let want = reference(&labels);
    let mut buf = Vec::new();
    labels
        .read_bytes(0, labels.len() as usize, &mut buf)
        .unwrap();
    let mut arcs_total = 0;
    for (n, expected) in want.iter().enumerate() {
        let (s, e) = labels.bits(n);
        let mut got = Vec::new();
        let arcs = decode_labels(&buf, n, s, e, labels.width(), |a, v| got.push((a, v))).unwrap();
        assert_eq!(arcs as usize, labels.outdegree(n), "node {n}: arcs");
        let succs: Vec<usize> = labels.successors(n).collect();
        let got: Vec<(usize, u64)> = got.iter().map(|&(a, v)| (succs[a as usize], v)).collect();
        assert_eq!(&got, expected, "node {n}");
        arcs_total += arcs;
    }
    // The parallel pass: every node, names with an even id wanted, on several threads.
    let max_name = want
        .iter()
        .flatten()
        .map(|(_, v)| v >> 3)
        .max()
        .unwrap_or(0);
    let words = vec![0x5555_5555_5555_5555u64; (max_name / 64 + 1) as usize];
    let wanted = Wanted::from_words(words);
    let n = labels.nodes();
    let all = Bits::from_words(vec![u64::MAX; n.div_ceil(64)], 0..n);
    let tmp = tempdir();
    let path = tmp.path().join("entries.flat");
    let mut expected: Vec<Entry> = Vec::new();
    for (node, arcs) in want.iter().enumerate() {
        let mut dir: Vec<Entry> = arcs
            .iter()
            .filter(|(_, v)| (v >> 3) % 2 == 0)
            .map(|&(succ, v)| Entry {
                dir: node as u64,
                name_id: v >> 3,
                perm: (v & 7) as u8,
                target: succ as u64,
            })
            .collect();
        dir.sort_unstable();
        expected.extend(dir);
    }
    for (gap, dense) in [(0, 1.0), (4096, 1.0), (1 << 20, 0.0)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let counts = pool.install(|| {
            let mut w = FlatWriter::create(&path).unwrap();
            let c = pass(&labels, &all, 0..n, &wanted, (gap, dense), &mut w).unwrap();
            w.finish().unwrap();
            c
        });
        let got: Vec<Entry> = FlatFile::<Entry>::open(&path)
            .unwrap()
            .iter_from(0)
            .collect();
        assert_eq!(got, expected, "gap {gap}, dense fraction {dense}");
        assert_eq!(counts.arcs, arcs_total);
        assert_eq!(counts.directories, n as u64);
    }
    arcs_total
}

#[test]
fn fast_and_parallel_decoders_agree_with_the_reference_on_real_graphs() {
    let tmp = tempdir();
    let demo = tmp.path().join("demo");
    unearth::archive::demo::build_demo(&demo).unwrap();
    assert!(decoders_agree(&demo.join("graph/graph")) > 50);

    let syn = tmp.path().join("syn");
    let o = unearth()
        .args(["archive", "synth", "--out"])
        .arg(&syn)
        .args(["--nodes", "30000", "--rows", "500", "--seed", "9"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(decoders_agree(&syn.join("graph/graph")) > 10_000);

    if let Some(example) = shared_example() {
        assert!(decoders_agree(&example.join("compressed/example")) > 0);
    }
}
