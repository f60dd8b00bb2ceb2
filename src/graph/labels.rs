//! The labels file (`BASE-labelled.labels`) and its decoder.
//!
//! The file is a big-endian bitstream holding, node after node in id order, for each arc (in
//! successor order) a γ-coded count followed by that many labels of `width` bits (`width`
//! from the `labelspec` of `BASE-labelled.properties`). A directory entry label is
//! `name_id << 3 | permission`. Where a node starts is given by the Elias-Fano index
//! `BASE-labelled.ef`; arc targets come from the forward BV graph.
//!
//! swh-graph reads labels by random access (`labeled_successors`); unearth's label pass reads
//! byte ranges of the file in node order and decodes them with [`decode_labels`] (over bytes,
//! without successors). [`decode_node`], over dsi-bitstream's reader with the successors, is
//! the reference the tests compare it with.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dsi_bitstream::prelude::*;
use epserde::deser::{Deserialize, Flags, MemCase};
use swh_graph::graph::{SwhForwardGraph, SwhUnidirectionalGraph};
use swh_graph::webgraph::graphs::bvgraph::EF;
use value_traits::slices::SliceByValue;

use super::{suffixed, GraphError};

/// Why a node's labels could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bit reader failed.
    #[error("node {node}: cannot read its labels: {reason}")]
    Read {
        /// The node.
        node: usize,
        /// The reader's error.
        reason: String,
    },
    /// The labels run past the node's end (a damaged file, or another graph's offsets).
    #[error("node {node}: its labels run past its {bits} bits")]
    Overrun {
        /// The node.
        node: usize,
        /// The node's length in bits.
        bits: u64,
    },
}

/// Decodes the labels of `node`, starting at the reader's position: for each successor in
/// `successors`, in order, γ(count) then `count` labels of `width` bits, each handed to
/// `visit(successor, label)`. The node's labels take `bits` bits; a count that would run past
/// them is an error, so a damaged file cannot make the decoder loop or read another node.
/// Returns the number of arcs decoded.
pub fn decode_node<R>(
    reader: &mut R,
    node: usize,
    bits: u64,
    successors: impl IntoIterator<Item = usize>,
    width: usize,
    mut visit: impl FnMut(usize, u64),
) -> Result<u64, DecodeError>
where
    R: GammaRead<BE>,
{
    let read_err = |e: &dyn std::fmt::Debug| DecodeError::Read {
        node,
        reason: format!("{e:?}"),
    };
    let mut used = 0u64;
    let mut arcs = 0u64;
    for succ in successors {
        let count = reader.read_gamma().map_err(|e| read_err(&e))?;
        // γ(count) takes 2·⌊log2(count+1)⌋+1 bits.
        used += 2 * u64::from((count + 1).ilog2()) + 1;
        let payload = count.saturating_mul(width as u64);
        if used.saturating_add(payload) > bits {
            return Err(DecodeError::Overrun { node, bits });
        }
        used += payload;
        for _ in 0..count {
            let v = reader.read_bits(width).map_err(|e| read_err(&e))?;
            visit(succ, v);
        }
        arcs += 1;
    }
    Ok(arcs)
}

/// The first bits at `pos` of a big-endian bitstream, left-aligned: at least 57 are valid.
/// `bytes` must extend 8 bytes past `pos / 8`.
#[inline(always)]
fn peek(bytes: &[u8], pos: u64) -> u64 {
    let i = (pos >> 3) as usize;
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i..i + 8]);
    u64::from_be_bytes(w) << (pos & 7)
}

/// `n` bits (1 to 64) at `pos`.
#[inline(always)]
fn bits_at(bytes: &[u8], pos: u64, n: usize) -> u64 {
    if n <= 57 {
        peek(bytes, pos) >> (64 - n)
    } else {
        (bits_at(bytes, pos, 32) << (n - 32)) | bits_at(bytes, pos + 32, n - 32)
    }
}

/// Decodes the labels of `node`, bits `start..end` of `bytes` (the labels file, or a window
/// of it, as big-endian bits; `bytes` must extend 8 bytes past `end / 8`), without its
/// successors: arcs are numbered in order, and `visit(arc, label)` is called for each label.
/// The arcs are counted by decoding up to `end` (an arc without labels still takes its one-bit
/// γ(0)), so the forward graph is needed only for the arcs a caller keeps.
///
/// This is the label pass's decoder: a γ code is read with one unaligned 64-bit load and a
/// leading-zero count, a label with one load and a shift; nothing is allocated. It gives what
/// [`decode_node`] gives (a test compares them on every node of real graphs), and, like it,
/// refuses a count that runs past the node. Returns the number of arcs.
#[inline]
pub fn decode_labels(
    bytes: &[u8],
    node: usize,
    start: u64,
    end: u64,
    width: usize,
    mut visit: impl FnMut(u64, u64),
) -> Result<u64, DecodeError> {
    let overrun = || DecodeError::Overrun {
        node,
        bits: end.saturating_sub(start),
    };
    if start > end || (end >> 3) as usize + 8 > bytes.len() || !(1..=64).contains(&width) {
        return Err(DecodeError::Read {
            node,
            reason: format!(
                "bits {start}..{end} (width {width}) lie outside the {} bytes read",
                bytes.len()
            ),
        });
    }
    let width64 = width as u64;
    let mut pos = start;
    let mut arcs = 0u64;
    while pos < end {
        let w = peek(bytes, pos);
        let zeros = u64::from(w.leading_zeros());
        let count = if zeros < 28 {
            // z zeros, a one, z bits: the value plus one, in 2z+1 bits.
            pos += 2 * zeros + 1;
            (w >> (63 - 2 * zeros)) - 1
        } else {
            // A long code (or zeros to the end): count zeros word by word, then read.
            let mut z = 0u64;
            loop {
                if pos + z >= end {
                    return Err(overrun());
                }
                let lz = u64::from(peek(bytes, pos + z).leading_zeros()).min(56);
                z += lz;
                if lz < 56 {
                    break;
                }
            }
            if z > 63 || pos + 2 * z + 1 > end {
                return Err(overrun());
            }
            let v = bits_at(bytes, pos + z, z as usize + 1);
            pos += 2 * z + 1;
            v - 1
        };
        let payload = count.checked_mul(width64).ok_or_else(overrun)?;
        if pos > end || payload > end - pos {
            return Err(overrun());
        }
        for _ in 0..count {
            visit(arcs, bits_at(bytes, pos, width));
            pos += width64;
        }
        arcs += 1;
    }
    Ok(arcs)
}

/// The label width declared in `<base>-labelled.properties`.
pub fn label_width(base: &Path) -> Result<usize, GraphError> {
    let path = suffixed(base, "-labelled.properties");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| GraphError::new(base, format!("{}: {e}", path.display())))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "labelspec")
        .and_then(|(_, v)| {
            let v = v.replace('\\', "");
            let inner = v.trim().strip_suffix(')')?;
            inner.rsplit_once(',')?.1.trim().parse().ok()
        })
        .filter(|w| (1..=64).contains(w))
        .ok_or_else(|| {
            GraphError::new(
                base,
                format!(
                    "{}: no labelspec=...SwhLabel(DirEntry,WIDTH)",
                    path.display()
                ),
            )
        })
}

/// The labels file opened for reading by node range: its offsets, its forward graph and the
/// file itself.
pub struct LabelFile {
    width: usize,
    ef: MemCase<EF>,
    graph: SwhUnidirectionalGraph<()>,
    file: File,
    path: PathBuf,
    len: u64,
    nodes: usize,
}

impl LabelFile {
    /// Opens the labels of the graph at `base`.
    pub fn open(base: &Path) -> Result<Self, GraphError> {
        let width = label_width(base)?;
        let nodes = super::num_nodes(base)?;
        let graph = SwhUnidirectionalGraph::new(base).map_err(|e| GraphError::new(base, e))?;
        let labelled = suffixed(base, "-labelled");
        let ef_path = suffixed(&labelled, ".ef");
        // SAFETY: the file is an epserde serialisation written by swh-graph / webgraph; it is
        // only read, and its length is checked against the node count below.
        let ef = unsafe { EF::mmap(&ef_path, Flags::empty()) }
            .map_err(|e| GraphError::new(base, e.context(ef_path.display().to_string())))?;
        if ef.uncase().len() < nodes + 1 {
            return Err(GraphError::new(
                base,
                format!("{} has fewer offsets than nodes", ef_path.display()),
            ));
        }
        let path = suffixed(&labelled, ".labels");
        let file = File::open(&path)
            .map_err(|e| GraphError::new(base, format!("{}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| GraphError::new(base, format!("{}: {e}", path.display())))?
            .len();
        Ok(Self {
            width,
            ef,
            graph,
            file,
            path,
            len,
            nodes,
        })
    }

    /// Label width in bits.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Size of the labels file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Path of the labels file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Bit offsets where `node`'s labels start and end.
    pub fn bits(&self, node: usize) -> (u64, u64) {
        let ef = self.ef.uncase();
        (ef.index_value(node), ef.index_value(node + 1))
    }

    /// Successors of `node`, in the order its labels are stored.
    pub fn successors(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.successors(node)
    }

    /// Number of successors of `node` in the forward graph.
    pub fn outdegree(&self, node: usize) -> usize {
        self.graph.outdegree(node)
    }

    /// Asks the kernel to start reading `len` bytes at `offset` in the background
    /// (`POSIX_FADV_WILLNEED`), so that scattered reads that follow find them cached and the
    /// disk sees many requests at once instead of one at a time. Only a hint: errors are
    /// ignored.
    pub fn will_need(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a file descriptor this struct owns.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }

    /// Reads `len` bytes at `offset` into `buf`, followed by 16 zero bytes (the decoder's
    /// loads run up to 8 bytes past the last bit).
    pub fn read_bytes(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        buf.resize(len + 16, 0);
        self.file.read_exact_at(&mut buf[..len], offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes nodes as the labels file does: per arc γ(count), then the labels.
    fn encode(nodes: &[Vec<Vec<u64>>], width: usize) -> (Vec<u32>, Vec<u64>) {
        let mut w = BufBitWriter::<BE, _>::new(MemWordWriterVec::new(Vec::<u32>::new()));
        let mut offsets = vec![0u64];
        let mut at = 0u64;
        for arcs in nodes {
            for labels in arcs {
                at += w.write_gamma(labels.len() as u64).unwrap() as u64;
                for &l in labels {
                    at += w.write_bits(l, width).unwrap() as u64;
                }
            }
            offsets.push(at);
        }
        let words = w.into_inner().unwrap().into_inner();
        (words, offsets)
    }

    #[test]
    fn decodes_what_was_encoded_and_refuses_overruns() {
        let width = 11;
        let nodes = vec![
            vec![vec![(5 << 3) | 1], vec![], vec![(7 << 3) | 4, (2 << 3) | 1]],
            vec![],
            vec![vec![(255 << 3) | 5]],
        ];
        let (words, offsets) = encode(&nodes, width);
        let succs = [vec![10usize, 11, 12], vec![], vec![3]];
        let mut padded = words.clone();
        padded.extend([0; 4]);
        let mut reader = BufBitReader::<BE, _>::new(MemWordReader::new(&padded[..]));
        for (node, arcs) in nodes.iter().enumerate() {
            reader.set_bit_pos(offsets[node]).unwrap();
            let mut got = Vec::new();
            let bits = offsets[node + 1] - offsets[node];
            let n = decode_node(
                &mut reader,
                node,
                bits,
                succs[node].clone(),
                width,
                |s, v| got.push((s, v)),
            )
            .unwrap();
            assert_eq!(n as usize, arcs.len());
            let want: Vec<(usize, u64)> = arcs
                .iter()
                .zip(&succs[node])
                .flat_map(|(ls, &s)| ls.iter().map(move |&l| (s, l)))
                .collect();
            assert_eq!(got, want, "node {node}");
            assert_eq!(reader.bit_pos().unwrap(), offsets[node + 1]);
        }
        // The same bits read as a shorter node: the labels overrun it.
        reader.set_bit_pos(0).unwrap();
        let short = offsets[1] - 3;
        assert_eq!(
            decode_node(&mut reader, 0, short, succs[0].clone(), width, |_, _| {}),
            Err(DecodeError::Overrun {
                node: 0,
                bits: short
            })
        );
        // A stream of zeros is no γ code at all: the reader ends, with an error, not a loop.
        let zeros = [0u32; 4];
        let mut r = BufBitReader::<BE, _>::new(MemWordReader::new(&zeros[..]));
        assert!(decode_node(&mut r, 9, 64, [1, 2], width, |_, _| panic!("no label")).is_err());
    }
}
