#!/usr/bin/env python3
# Benchmark input (BENCHMARKS.md): python3 scripts/replicate-rows.py ARCHIVE OUT N
# N metadata rows from an archive's own rows: copy k keeps the repository for k % 8 == 0
# (else a new owner: origin_not_found) and suffixes the path with .k for k > 0, so that the
# rows hold ~N/8 distinct pairs and ~N distinct paths, as full-scale metadata does.
import sys, os, glob
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
src, dst, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{src}/metadata/*.parquet"))])
base = base.select(["repo", "commit_id", "rel_path"])
os.makedirs(f"{dst}/metadata", exist_ok=True)
k = written = part = in_part = 0
w = None
while written < total:
    t = base.slice(0, min(base.num_rows, total - written))
    repo, path = t["repo"], t["rel_path"]
    if k % 8:
        repo = pc.replace_substring_regex(repo, "^([^/]*)/", f"\\1x{k}/")
    if k:
        path = pc.binary_join_element_wise(path, pa.scalar(f".{k}"), "")
    out = pa.table({"repo": repo, "commit_id": t["commit_id"], "rel_path": path})
    if w is None:
        w = pq.ParquetWriter(f"{dst}/metadata/part-{part:05}.parquet", out.schema)
    w.write_table(out)
    written += t.num_rows; in_part += t.num_rows; k += 1
    if in_part >= 1_000_000 or written >= total:
        w.close(); w = None; part += 1; in_part = 0
name = os.path.basename(os.path.abspath(src))
# Resolution only (no `orc`): the rows' blobs are not what this measures.
open(f"{dst}/unearth.toml", "w").write(
    f'graph = "../{name}/graph/graph"\nmetadata = "metadata"\nworkdir = "work"\n')
