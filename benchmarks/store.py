"""Store and query benchmark: exact/IVF neighbour search and full-table reads.

Measures, on synthetic clustered vectors written to a real on-disk store:

* ``Store.neighbors`` exact top-10 latency (p50/p95) at 16k x 512 and
  16k x 4,096, for the cached NumPy engine (the default) and LanceDB's flat
  scan (the baseline, ``engine="lance"``), plus the first (cold) query that
  loads the matrix, and a filtered (``where``) query;
* recall@10 and latency of IVF indexes (``use_index=True``) against exact search;
* full-table read throughput (rows/s, MiB/s) of ``Store.embeddings`` and of a
  raw lance scan, against ``np.load`` of the same matrix from a ``.npy`` file.

Every ratio compares numbers measured in the same run. Usage::

    python benchmarks/store.py            # full run, writes benchmarks/results/store.md
    python benchmarks/store.py --quick    # 2k rows, a few queries (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, machine_md, md_table, time_calls, time_calls_cpu  # noqa: E402

GOAL_MS = 20.0
HERE = Path(__file__).resolve().parent


def clustered(rng: np.random.Generator, n: int, d: int, clusters: int = 64, kind: str = "lowrank") -> np.ndarray:
    """Synthetic vectors around ``clusters`` random centres.

    ``lowrank`` (embedding-like): centre + a 32-dimensional latent variation +
    small isotropic noise, so neighbourhoods have structure. ``isotropic``
    (the hard case for quantisation): centre + large isotropic noise, so all
    points of a cluster are nearly equidistant from a query.
    """
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    if kind == "isotropic":
        return (centres[which] + 0.6 * rng.normal(size=(n, d))).astype(np.float32)
    basis = rng.normal(size=(32, d)).astype(np.float32) / np.sqrt(32)
    latent = rng.normal(size=(n, 32)).astype(np.float32)
    return (centres[which] + latent @ basis + 0.05 * rng.normal(size=(n, d))).astype(np.float32)


def fill(store, n: int, d: int, rng: np.random.Generator, n_queries: int, kind: str = "lowrank"):
    """Write ``n`` x ``d`` synthetic vectors; returns (model, vectors, held-out queries, write seconds)."""
    import pyarrow as pa

    from embedstore import ModelIdentity

    model = ModelIdentity(f"bench:synthetic-{kind}-{d}", "random", ("image",), {"image": d}, pooling="none")
    both = clustered(rng, n + n_queries, d, kind=kind)
    vecs, queries = both[:n], both[n:]
    ids = [f"s{i:06d}" for i in range(n)]
    store.write_samples("bench", pa.table({  # readers pair vectors with their samples (image hash = id here)
        "sample_id": ids, "text": ids, "text_sha256": ids, "prompt_name": ["none"] * n,
        "prompt_template": ["none"] * n, "image_ref": ids, "image_sha256": ids, "label": ["0"] * n,
        "split_paper": ["train"] * n}))
    t0 = time.perf_counter()
    store.write_embeddings("bench", model, "image", ids, vecs, ids)
    return model, vecs, queries, time.perf_counter() - t0


def ms(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q) * 1000)


def latency(store, model, d: int, queries: np.ndarray, n_fast: int, n_lance: int) -> list[dict]:
    it = iter(np.resize(np.arange(len(queries)), 10**6))
    rows = []
    store.clear_neighbors_cache()
    t0 = time.perf_counter()
    store.neighbors("bench", model, "image", vector=queries[0], k=10)
    cold = time.perf_counter() - t0
    for label, kw, n in [("exact, numpy engine (cached matrix)", {}, n_fast),
                         ("exact, LanceDB flat scan (baseline)", {"engine": "lance"}, n_lance),
                         ("exact + where prefilter, numpy engine", {"where": "sample_id < 's008000'"}, n_fast),
                         ("exact + where prefilter, LanceDB flat scan", {"engine": "lance", "where": "sample_id < 's008000'"},
                          n_lance)]:
        t, cpu = time_calls_cpu(lambda: store.neighbors("bench", model, "image", vector=queries[next(it)], k=10,
                                                        **kw), n)
        rows.append({"dim": d, "search": label, "queries": n, "p50": ms(t, 50), "p95": ms(t, 95), "cpu": cpu * 1000})
    rows.append({"dim": d, "search": "first query, cold (reads the matrix)", "queries": 1,
                 "p50": cold * 1000, "p95": cold * 1000, "cpu": None})
    return rows


def ivf(store, model, queries: np.ndarray, kinds: list[str], parts: int) -> list[dict]:
    exact = [store.neighbors("bench", model, "image", vector=q, k=10)["sample_id"].to_pylist() for q in queries]
    it = iter(np.resize(np.arange(len(queries)), 10**6))
    t = time_calls(lambda: store.neighbors("bench", model, "image", vector=queries[next(it)], k=10), len(queries))
    rows = [{"index": "none (exact, numpy engine)", "build_s": 0.0, "recall": 1.0, "p50": ms(t, 50), "p95": ms(t, 95)}]
    for kind in kinds:
        t0 = time.perf_counter()
        store.create_index(model, "image", kind=kind, num_partitions=parts)
        build = time.perf_counter() - t0
        for nprobes, refine in [(20, 10), (20, None)] if kind == "ivf_pq" else [(20, None)]:
            hits, times = 0.0, []
            for q, ex in zip(queries, exact):
                t0 = time.perf_counter()
                got = store.neighbors("bench", model, "image", vector=q, k=10, use_index=True,
                                      nprobes=nprobes, refine_factor=refine)["sample_id"].to_pylist()
                times.append(time.perf_counter() - t0)
                hits += len(set(got) & set(ex)) / 10
            times = np.array(times[1:])
            rows.append({"index": f"{kind} ({parts} partitions, nprobes {nprobes}, refine {refine or 'off'})",
                         "build_s": build, "recall": hits / len(queries), "p50": ms(times, 50), "p95": ms(times, 95)})
    return rows


def reads(store, model, vecs: np.ndarray, tmp: Path, repeats: int) -> list[dict]:
    from embedstore import vectors_of

    n, d = vecs.shape
    mib = vecs.nbytes / 2**20
    npy = tmp / "matrix.npy"
    np.save(npy, vecs)
    ds = store.open_table(store._emb_table(model, "image")).to_lance()
    ways = [(".npy file, np.load (baseline)", lambda: np.load(npy)),
            ("Store.embeddings(as_='numpy')", lambda: store.embeddings("bench", model, "image", as_="numpy")[1]),
            ("raw lance scan of the vector column", lambda: vectors_of(ds.to_table(columns=["vector"])))]
    rows = []
    for label, fn in ways:
        assert np.array_equal(np.asarray(fn()), vecs)
        t = float(np.median(time_calls(fn, repeats)))
        rows.append({"dim": d, "reader": label, "s": t, "rows_s": n / t, "mib_s": mib / t})
    return rows


def run(n: int, dims: list[int], n_fast: int, n_lance: int, n_recall: int, kinds: list[str], repeats: int) -> dict:
    from embedstore import Store

    rng = np.random.default_rng(0)
    out: dict = {"latency": [], "ivf": [], "reads": [], "writes": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        nq = max(n_fast, n_recall)
        for d in dims:
            model, vecs, queries, wt = fill(store, n, d, rng, nq)
            out["writes"].append({"dim": d, "s": wt, "mib": vecs.nbytes / 2**20})
            print(f"[{n} x {d}] exact latency ...", flush=True)
            out["latency"] += latency(store, model, d, queries, n_fast, n_lance)
            print(f"[{n} x {d}] read throughput ...", flush=True)
            out["reads"] += reads(store, model, vecs, Path(tmp), repeats)
            if d == dims[0] and kinds:
                out["ivf_dim"] = d
                for kind in ("lowrank", "isotropic"):
                    print(f"[{n} x {d}, {kind}] IVF indexes {kinds} ...", flush=True)
                    if kind != "lowrank":
                        model, _, queries, _ = fill(store, n, d, rng, nq, kind=kind)
                    rows = ivf(store, model, queries[:n_recall], kinds, max(1, int(np.sqrt(n))))
                    out["ivf"] += [{"data": kind, **r} for r in rows]
            store.clear_neighbors_cache()
    return out


def markdown(res: dict, n: int, info: dict, seconds: float) -> str:
    lat = res["latency"]
    base = {(r["dim"], "where" in r["search"]): r for r in lat if "LanceDB" in r["search"]}
    lines = ["# Store and query benchmark", "",
             f"Generated by `python benchmarks/store.py` in {seconds:.0f} s. {machine_md(info)}.", "",
             f"Synthetic float32 vectors around 64 cluster centres ({n:,} rows per table; see `clustered()`) "
             "written to a real on-disk store with `Store.write_embeddings`; queries are held-out draws from "
             "the same distribution. "
             "Machine shared with other jobs: expect noise.", "",
             f"## Exact top-10 latency (`Store.neighbors`, cosine, k=10; goal p50 <= {GOAL_MS:.0f} ms at {n:,} x 512)", ""]
    rows = []
    for r in lat:
        b = base.get((r["dim"], "where" in r["search"]))
        ratio = f"{b['p50'] / r['p50']:.1f}x" if b and "numpy" in r["search"] else ""
        cpu = "" if r["cpu"] is None else f"{r['cpu']:.2f}"
        rows.append([f"{n:,} x {r['dim']:,}", r["search"], r["queries"], f"{r['p50']:.2f}", f"{r['p95']:.2f}", cpu,
                     ratio])
    lines += [md_table(["table", "search", "queries", "p50 ms", "p95 ms", "CPU ms/query (all threads)",
                        "speed-up vs LanceDB flat scan (p50)"], rows), ""]
    goal = [r for r in lat if r["dim"] == 512 and r["search"].startswith("exact, numpy")]
    if goal:
        p50 = goal[0]["p50"]
        lines += [f"Exact top-10 p50 at {n:,} x 512: **{p50:.2f} ms** "
                  f"({'meets' if p50 <= GOAL_MS else 'misses'} the {GOAL_MS:.0f} ms goal; "
                  f"{goal[0]['cpu']:.2f} ms of CPU per query).", ""]
    lines += ["The numpy engine keeps the table's matrix in memory per (table, version, dataset, alignment); "
              "the cold row is the first query after a write (it reads the matrix). Both engines return the same "
              "rows (tests/test_neighbors.py).", ""]
    if res["ivf"]:
        lines += [f"## IVF indexes vs exact search ({n:,} x {res['ivf_dim']}, cosine, recall@10 against the "
                  "exact engine's top 10)", "",
                  "`lowrank` data is embedding-like (cluster centre + 32-d latent variation + small noise); "
                  "`isotropic` is the hard case (cluster centre + large isotropic noise: every point of a "
                  "cluster is nearly equidistant from a query, which defeats product quantisation).", ""]
        rows = []
        for r in res["ivf"]:
            exact_p50 = next(e["p50"] for e in res["ivf"] if e["data"] == r["data"] and e["build_s"] == 0.0)
            rows.append([r["data"], r["index"], f"{r['build_s']:.1f}", f"{r['recall']:.3f}", f"{r['p50']:.2f}",
                         f"{r['p95']:.2f}", f"{r['p50'] / exact_p50:.2f}x"])
        lines += [md_table(["data", "index", "build s", "recall@10", "p50 ms", "p95 ms", "p50 / exact p50"], rows), ""]
    lines += ["## Full-table read throughput (warm page cache, median of repeats)", ""]
    npy = {r["dim"]: r for r in res["reads"] if "npy" in r["reader"]}
    rows = [[f"{n:,} x {r['dim']:,}", r["reader"], f"{r['s'] * 1000:.0f}", f"{r['rows_s']:,.0f}", f"{r['mib_s']:,.0f}",
             f"{r['s'] / npy[r['dim']]['s']:.1f}x"] for r in res["reads"]]
    lines += [md_table(["table", "reader", "ms", "rows/s", "MiB/s", "time vs .npy"], rows), ""]
    rows = [[f"{n:,} x {w['dim']:,}", f"{w['mib']:.1f}", f"{w['s']:.2f}", f"{w['mib'] / w['s']:.0f}"] for w in res["writes"]]
    lines += ["## Initial write (`write_embeddings`: model registration, table creation, one keyed upsert)", "",
              md_table(["table", "MiB", "s", "MiB/s"], rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small tables and few queries (smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "store.md", help="markdown output file")
    args = ap.parse_args(argv)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    if args.quick:
        n, cfg = 2000, dict(n_fast=20, n_lance=5, n_recall=10, kinds=["ivf_flat"], repeats=2)
    else:
        n, cfg = 16000, dict(n_fast=200, n_lance=40, n_recall=100, kinds=["ivf_flat", "ivf_pq", "ivf_hnsw_sq"], repeats=5)
    res = run(n, [512, 4096], **cfg)
    info = machine()
    info["load_avg_1m"] = f"{load0:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    text = markdown(res, n, info, time.perf_counter() - t0)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = ""  # the sections other scripts write into the same file (store_size.py, aligned_reads.py)
    if args.out.exists():
        old = args.out.read_text()
        starts = [i for i in (old.find("\n## Store size"), old.find("\n## Aligned reads")) if i >= 0]
        kept = old[min(starts):] if starts else ""
    args.out.write_text(text.rstrip() + "\n" + kept)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
