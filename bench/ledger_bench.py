"""Document-log benchmark: append throughput, proof verification at a million leaves, proofs from the DB.

    .venv/bin/python bench/ledger_bench.py [--single 1000] [--batches 50] [--db-leaves 100000]

Appends go to a SQLite file in a temporary directory (one fsync'd transaction per append, or per
batch of 100 with ``append_many``). Verification at 1,000,000 leaves uses the in-memory tree (the
same tree code the log runs on stored hashes) to produce proofs and times ``verify_inclusion``.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import create_engine  # noqa: E402

from activities.ledger import InMemoryTree, Ledger, leaf_hash, verify_inclusion  # noqa: E402


def _entry(i: int) -> bytes:
    return b'{"document_sha256":"' + hashlib.sha256(i.to_bytes(8, "big")).hexdigest().encode() + b'","v":1}'


def bench_appends(workdir: Path, single: int, batches: int, batch: int) -> tuple[float, float]:
    engine = create_engine(f"sqlite:///{workdir / 'appends.db'}")
    ledger = Ledger(engine, workdir / "keys" / "ledger.pem")
    t0 = time.perf_counter()
    for i in range(single):
        ledger.append(_entry(i), f"single-{i}")
    single_rate = single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in range(batches):
        base = single + b * batch
        ledger.append_many([(_entry(base + j), f"batch-{base + j}") for j in range(batch)])
    batched_rate = batches * batch / (time.perf_counter() - t0)
    assert ledger.size() == single + batches * batch
    assert ledger.audit() == []
    engine.dispose()
    return single_rate, batched_rate


def bench_verify(leaves: int, samples: int, rng: random.Random) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    tree = InMemoryTree.from_leaf_hashes(leaf_hash(i.to_bytes(8, "big")) for i in range(leaves))
    build_s = time.perf_counter() - t0
    root = tree.root()
    times = []
    length = 0
    for _ in range(samples):
        index = rng.randrange(leaves)
        proof = tree.inclusion_proof(index)
        h = tree.levels[0][index]
        t0 = time.perf_counter()
        ok = verify_inclusion(h, index, leaves, proof, root)
        times.append(time.perf_counter() - t0)
        assert ok
        length = max(length, len(proof))
    return statistics.median(times) * 1e6, build_s, length


def bench_db_proofs(
    workdir: Path, leaves: int, samples: int, rng: random.Random
) -> tuple[float, float, float]:
    engine = create_engine(f"sqlite:///{workdir / 'proofs.db'}")
    ledger = Ledger(engine, workdir / "keys" / "ledger.pem")
    batch = 2000
    t0 = time.perf_counter()
    for base in range(0, leaves, batch):
        ledger.append_many([(_entry(i), f"k-{i}") for i in range(base, min(leaves, base + batch))])
    load_s = time.perf_counter() - t0
    root = ledger.root()
    gen, ver = [], []
    for _ in range(samples):
        index = rng.randrange(leaves)
        t0 = time.perf_counter()
        proof = ledger.inclusion_proof(index)
        gen.append(time.perf_counter() - t0)
        entry = ledger.entry(index)
        t0 = time.perf_counter()
        assert verify_inclusion(leaf_hash(entry), index, leaves, proof, root)
        ver.append(time.perf_counter() - t0)
    engine.dispose()
    return load_s, statistics.median(gen) * 1e6, statistics.median(ver) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=1000, help="single appends")
    parser.add_argument("--batches", type=int, default=50, help="append_many batches of 100")
    parser.add_argument("--leaves", type=int, default=1_000_000, help="in-memory tree size for verification")
    parser.add_argument("--samples", type=int, default=1000, help="proofs per measurement")
    parser.add_argument(
        "--db-leaves", type=int, default=100_000, help="stored log size for DB proofs (0: skip)"
    )
    args = parser.parse_args()
    rng = random.Random(9162)

    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        workdir = Path(tmp)
        single, batched = bench_appends(workdir, args.single, args.batches, 100)
        print(f"appends (SQLite file, one transaction each): {single:,.0f}/s over {args.single}")
        print(f"append_many of 100 (one transaction per batch): {batched:,.0f}/s over {args.batches * 100}")

        verify_us, build_s, length = bench_verify(args.leaves, args.samples, rng)
        print(
            f"verify_inclusion at {args.leaves:,} leaves: median {verify_us:.1f} µs over {args.samples} proofs "
            f"(proofs of up to {length} hashes; in-memory tree built in {build_s:.1f} s)"
        )

        if args.db_leaves:
            load_s, gen_us, ver_us = bench_db_proofs(workdir, args.db_leaves, args.samples, rng)
            print(
                f"stored log of {args.db_leaves:,} leaves: loaded in {load_s:.1f} s "
                f"({args.db_leaves / load_s:,.0f} appends/s in batches of 2000); inclusion proof from the DB "
                f"median {gen_us:.0f} µs, its verification median {ver_us:.1f} µs"
            )

    print(f"appends/s={single:.0f} batched_appends/s={batched:.0f} verify_us_at_1M={verify_us:.1f}")


if __name__ == "__main__":
    main()
