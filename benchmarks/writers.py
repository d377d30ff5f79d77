"""Concurrent writers into one embeddings table, no lock: throughput and duplicates.

N writer processes (1, 2, 4) write the vectors of one dataset and model into
one table the way ``extract`` does (``Store.write_embeddings`` in chunks,
each chunk one commit), all released together by a barrier:

* **disjoint**: the rows are split into N disjoint parts;
* **overlapping**: writers alternate between two halves that share the middle
  half of the keys (rows 25-75 %), so every key of the overlap is written by
  several writers at once.

Backends: a local directory and an ``s3://`` bucket on a local moto S3 server
(``moto[server]``, the ``test`` extra). For each run: unique rows/s (rows in
the table / wall time from the barrier to the last writer's exit) against one
writer on the same backend in the same run, commit attempts per commit, and
the number of duplicate keys (must be 0). Usage::

    python benchmarks/writers.py            # 1,000 rows; writes benchmarks/results/writers.md
    python benchmarks/writers.py --quick    # 400 rows (smoke test)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, machine_md, md_table  # noqa: E402

HERE = Path(__file__).resolve().parent
DIM, CHUNK = 64, 100


def _model():
    from embedstore import ModelIdentity

    return ModelIdentity("hf:bench/writers", "w0", ("image",), {"image": DIM})


def _rows(n: int, mode: str, writers: int, w: int) -> list[int]:
    if mode == "disjoint":
        return list(range(w, n, writers))
    lo, hi = ((0, 3 * n // 4), (n // 4, n))[w % 2]
    return list(range(lo, hi))


def _writer(uri, env, n, mode, writers, w, barrier, out) -> None:
    os.environ.update(env)
    from embedstore import Store

    store, model = Store(uri), _model()
    store.has_table("models")  # connect (and import lancedb) before the clock starts
    rows = _rows(n, mode, writers, w)
    rng = np.random.default_rng(w)
    barrier.wait()
    attempts = commits = 0
    for start in range(0, len(rows), CHUNK):
        ids = [f"s{i:05d}" for i in rows[start:start + CHUNK]]
        res = store.write_embeddings("bench", model, "image", ids, rng.normal(size=(len(ids), DIM)),
                                     [f"h{i}" for i in ids])
        attempts, commits = attempts + res.attempts, commits + 1
    out.put((attempts, commits))


def run_one(uri: str, env: dict[str, str], n: int, mode: str, writers: int) -> dict[str, float]:
    from embedstore import Store
    from embedstore.schema import embeddings_table

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, env, n, mode, writers, w, barrier, out)) for w in range(writers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    if any(p.exitcode for p in procs):
        raise SystemExit(f"a writer failed ({[p.exitcode for p in procs]}); see its traceback above")
    stats = [out.get() for _ in procs]
    os.environ.update(env)
    keys = Store(uri).read(embeddings_table(_model().key, "image", DIM), columns=["row_key"])["row_key"].to_pylist()
    return {"rows": len(keys), "dups": len(keys) - len(set(keys)), "wall": wall,
            "attempts": sum(s[0] for s in stats) / max(1, sum(s[1] for s in stats))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "writers.md")
    ap.add_argument("--no-s3", action="store_true", help="local directory only")
    args = ap.parse_args()
    n = 400 if args.quick else 1000
    info = machine()
    backends = [("local", None)]
    server = None
    if not args.no_s3:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {"EMBEDSTORE_STORAGE_ENDPOINT": endpoint, "EMBEDSTORE_STORAGE_REGION": "us-east-1",
               "EMBEDSTORE_STORAGE_AWS_ACCESS_KEY_ID": "bench", "EMBEDSTORE_STORAGE_AWS_SECRET_ACCESS_KEY": "bench",
               "EMBEDSTORE_STORAGE_ALLOW_HTTP": "true"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(Bucket="bench")
        backends.append(("s3 (moto)", env))
    tmp = Path(tempfile.mkdtemp(prefix="writers-bench-"))
    rows, total_dups = [], 0
    try:
        for backend, env in backends:
            base = None
            for mode in ("disjoint", "overlapping"):
                for writers in (1, 2, 4):
                    if writers == 1 and mode == "overlapping":
                        continue  # one writer has nothing to overlap with
                    tag = uuid.uuid4().hex[:8]
                    uri = str(tmp / tag) if env is None else f"s3://bench/{tag}"
                    r = run_one(uri, env or {}, n, mode, writers)
                    rate = r["rows"] / r["wall"]
                    base = base or rate
                    total_dups += r["dups"]
                    rows.append([backend, mode, writers, r["rows"], f"{r['wall']:.2f}", f"{rate:.0f}",
                                 f"{rate / base:.2f}", f"{r['attempts']:.2f}", r["dups"]])
                    print(rows[-1], flush=True)
    finally:
        if server is not None:
            server.stop()
    info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    text = "\n".join([
        "# Concurrent writers into one table (no lock)",
        "",
        f"{n} rows of {DIM}-d vectors written by N processes in chunks of {CHUNK} (one commit each), "
        "like `extract`; *disjoint*: N disjoint parts; *overlapping*: two halves sharing the middle 50 % "
        "of the keys, writers alternating between them. Ratio: unique rows/s against 1 writer on the same "
        "backend in this run. Attempts: commit attempts per commit (1 = no conflict).",
        "",
        md_table(["backend", "mode", "writers", "rows", "wall s", "rows/s", "vs 1 writer", "attempts/commit",
                  "duplicate keys"], rows),
        "",
        machine_md(info),
        "",
        f"Duplicate keys in all runs: **{total_dups}**.",
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    lost = sum(n - r[3] for r in rows)
    if total_dups or lost:
        raise SystemExit(f"{total_dups} duplicate keys, {lost} rows missing")


if __name__ == "__main__":
    main()
