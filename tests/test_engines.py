"""The engine strategies: one protocol, one options object, and the job that is their only way back."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.engines import ComputeJob, Engine, EngineOptions, LocalEngine, make_engine
from embedstore.errors import InputError
from embedstore.extract import extract
from tests.charcount import expected_counts, registered_charcount
from tests.helpers import sample_rows


@pytest.fixture
def charcount():
    with registered_charcount() as scheme:
        yield scheme


class _Ext:
    """Just what a job reads from its extractor: the identity key and the forward counter."""

    class identity:  # noqa: N801
        key = "k0"

    forward_calls = 0


def _job(chunk_rows: int, written: list, fail: list) -> ComputeJob:
    def commit(ids, hashes, vectors):
        if fail:
            raise fail.pop()
        written.append((list(ids), list(hashes), vectors.copy()))

    return ComputeJob("text", ["a", "b", "c"], ["ha", "hb", "hc"], ["x", "y", "z"], extractor=_Ext(),
                      batch_size=2, chunk_rows=chunk_rows, show_progress=False, commit=commit, load=lambda: None)


def test_make_engine_returns_a_local_engine_never_none():
    eng = make_engine(EngineOptions())
    assert isinstance(eng, LocalEngine) and isinstance(eng, Engine) and eng.name == "local"
    with pytest.raises(InputError, match="need engine='ray'"):
        make_engine(EngineOptions("local", workers=2))
    with pytest.raises(InputError, match="unknown engine 'spark': use local or ray"):
        make_engine(EngineOptions("spark"))


def test_ray_engine_is_an_engine_and_takes_the_extractors_settings():
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    eng = make_engine(EngineOptions("ray", "builtin:minilm-l6", quantize="bf16", backend="onnx",
                                    opts={"max_length": 64}, workers=2, threads=3))
    assert isinstance(eng, Engine) and eng.name == "ray"
    assert eng.spec == {"model_id": "builtin:minilm-l6", "quantize": "bf16", "pooling": None, "backend": "onnx",
                        "opts": {"max_length": 64}}
    assert (eng.workers, eng.cpus_per_worker) == (2, 3.0)
    eng.close()  # started nothing


def test_job_commits_every_chunk_and_keeps_a_failed_chunk_pending():
    written: list = []
    job = _job(2, written, fail=[KeyboardInterrupt()])
    job.add(["a"], ["ha"], np.ones((1, 2), np.float32))
    assert (written, job.pending_rows) == ([], 1)
    with pytest.raises(KeyboardInterrupt):  # the write was interrupted: nothing is lost
        job.add(["b"], ["hb"], np.full((1, 2), 2, np.float32))
    assert (job.pending_rows, job.computed) == (2, 0)
    job.add(["c"], ["hc"], np.full((1, 2), 3, np.float32))  # retried with the next chunk
    assert [w[0] for w in written] == [["a", "b", "c"]] and job.computed == 3 and job.pending_rows == 0
    np.testing.assert_array_equal(written[0][2][:, 0], [1, 2, 3])
    job.flush()  # nothing pending: no empty write
    assert len(written) == 1
    job.skip("d", "unreadable")
    job.count_forwards(4)
    assert [s.sample_id for s in job.skipped] == ["d"] and job.extractor.forward_calls == 4


class _Recording(LocalEngine):
    """The local engine, recording the jobs it was given and whether it was closed."""

    def __init__(self) -> None:
        self.jobs: list = []
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def compute(self, job: ComputeJob) -> None:
        self.jobs.append((job.modality, len(job.ids), job.model_key))
        super().compute(job)


def test_extract_runs_on_a_given_engine_object_through_the_job_only(store, charcount):
    texts = ["lesion", "nevus", "melanoma"]
    store.write_samples("toy", sample_rows(["s0", "s1", "s2"], texts=texts))
    eng = _Recording()
    rep = extract(store, "toy", "charcount:5", modality="text", batch_size=2, chunk_rows=1, progress=False,
                  engine=eng)
    assert eng.jobs == [("text", 3, rep.model_key)] and not eng.closed  # the caller's engine: left open
    # chunk_rows=1 commits after each batch (2 rows, then 1): two table versions
    assert (rep.computed, rep.forward_calls, rep.result("text").version) == (3, 2, 2)
    ids, mat = store.embeddings("toy", rep.model_key, "text", as_="numpy")
    np.testing.assert_array_equal(mat, expected_counts([dict(zip(["s0", "s1", "s2"], texts))[s] for s in ids], 5))
    with pytest.raises(InputError, match="ray_address and workers go with engine='ray'"):
        extract(store, "toy", "charcount:5", modality="text", engine=eng, workers=2)
