#!/usr/bin/env python3
"""Writes a Stack-v2-like metadata file (blob_id, path, src_encoding, repo_name) from the
blobs an archive stores, for `unearth hydrate` and its benchmark.

    scripts/stack-ids.py ARCHIVE OUT.parquet [--rows N] [--missing K] [--seed S]

Takes N blob ids at random among the files of ARCHIVE/objects/content/ (their names are
the sha1s, the keys of the S3 bucket), adds K ids that no blob has (rows that must come back
`blob_missing`), and shuffles them with the seed.
"""
import argparse
import hashlib
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--missing", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    store = os.path.join(a.archive, "objects", "content")
    names = sorted(n for n in os.listdir(store) if len(n) == 40)
    if not names:
        raise SystemExit(f"{store}: no blobs")
    rng = random.Random(a.seed)
    ids = rng.sample(names, min(a.rows, len(names)))
    ids += [hashlib.sha1(f"missing {i}".encode()).hexdigest() for i in range(a.missing)]
    rng.shuffle(ids)
    table = pa.table(
        {
            "blob_id": ids,
            "path": [f"src/file_{i}.rs" for i in range(len(ids))],
            "src_encoding": ["UTF-8"] * len(ids),
            "repo_name": [f"synthetic/repo{i % 1000}" for i in range(len(ids))],
        }
    )
    pq.write_table(table, a.out)
    print(f"{a.out}: {len(ids)} rows ({a.missing} missing ids)")


if __name__ == "__main__":
    main()
