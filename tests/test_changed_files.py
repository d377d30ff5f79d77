"""The bytes embedded are the bytes hashed: a photo replaced on disk after ingest is never embedded under its old hash.

The spread case of a shared cache: datasets ``a`` and ``b`` hold the same
photos (real JPEG files in two folders, one real store on disk). One photo of
``a`` is replaced after ingest. Before this check, ``extract a`` embedded the
new photo under the old content hash, and ``extract b`` then copied that
vector (reuse by hash) to ``b``'s untouched photo, and ``doctor`` saw nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedstore import Store
from embedstore.ingest import ingest
from tests.helpers import invoke_cli


def _photos(folder: Path, n: int = 6) -> list[Path]:
    """``n`` distinct real JPEG photos (smooth colour fields with noise)."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        yy, xx = np.mgrid[0:48, 0:64]
        base = np.stack([xx * 4 + 20 * i, yy * 5, (xx + yy) * 2 + 30 * i], axis=-1) % 255
        arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"p{i}.jpg"
        Image.fromarray(arr).save(path, quality=92)
        out.append(path)
    return out


def _dataset(root: Path, photos: list[Path]) -> Path:
    root.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, root / p.name)
    (root / "m.csv").write_text("id,image,label\n" + "".join(f"{p.stem},{p.name},{i % 2}\n" for i, p in enumerate(photos)))
    return root


def _vector(model: str, path: Path) -> np.ndarray:
    """The vector of one file, computed directly (no store)."""
    from embedstore.extractors import load_extractor
    from embedstore.images import load_image

    ext = load_extractor(model)
    return ext.forward("image", ext.prepare("image", [load_image(str(path))]))[0]


@pytest.fixture
def lab(tmp_path):
    from tests.tiny_models import make_tiny_vit

    photos = _photos(tmp_path / "photos")
    a, b = _dataset(tmp_path / "a", photos), _dataset(tmp_path / "b", photos)
    store = Store(tmp_path / "store")
    for name, root in (("a", a), ("b", b)):
        ingest(store, "manifest", root, name=name, progress=False)
    return store, make_tiny_vit(tmp_path / "vit"), a, b, photos


def test_a_replaced_photo_is_not_embedded_under_its_old_hash_and_does_not_spread(lab):
    store, model, a, b, photos = lab
    original = _vector(model, photos[0])
    shutil.copy(photos[5], a / "p0.jpg")  # a's p0 is now another photo; b's p0 is untouched
    new = _vector(model, a / "p0.jpg")
    assert not np.allclose(original, new, atol=1e-3)

    r = invoke_cli(store.uri, "extract", "a", "--model", model, "--no-progress", "--threads", "1")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("skipped p0:"))
    assert f"image {a / 'p0.jpg'}: changed on disk since ingest" in line and "re-ingest dataset 'a'" in line
    key = store.model(model).key
    ids, _ = store.embeddings("a", key, "image", as_="numpy")
    assert ids == ["p1", "p2", "p3", "p4", "p5"]  # nothing stored for p0 under its old hash
    table = store.read(f"emb__image__{key}__32", columns=["dataset", "sample_id"]).to_pylist()
    assert {"dataset": "a", "sample_id": "p0"} not in table

    # the spread case: b holds the original photo; its vector is computed from b's own file
    r = invoke_cli(store.uri, "extract", "b", "--model", model, "--no-progress", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["results"][0]["computed"] == 1  # p0 (the others reused from a: same bytes)
    ids, vecs = store.embeddings("b", key, "image", as_="numpy")
    np.testing.assert_allclose(vecs[ids.index("p0")], original, atol=1e-5)
    assert not np.allclose(vecs[ids.index("p0")], new, atol=1e-3)

    # doctor finds it only when asked to read the files, in one line with the fix
    assert invoke_cli(store.uri, "doctor").exit_code == 0
    r = invoke_cli(store.uri, "doctor", "--verify-files")
    assert r.exit_code == 1
    (problem,) = [x for x in r.output.splitlines() if "[file_changed]" in x]
    assert "samples__a: 1 image file(s) changed on disk since ingest" in problem and str(a / "p0.jpg") in problem
    assert "re-ingest dataset 'a'" in problem and "samples__b" not in r.output

    # re-ingest records the new file; extract then embeds it; b keeps the original's vector
    rep = ingest(store, "manifest", a, name="a", progress=False)
    assert (rep.updated, rep.inserted) == (1, 0)
    r = invoke_cli(store.uri, "extract", "a", "--model", model, "--no-progress", "--threads", "1", "--json")
    assert r.exit_code == 0 and not json.loads(r.output)["results"][0]["skipped"], r.output
    ids, vecs = store.embeddings("a", key, "image", as_="numpy")
    np.testing.assert_allclose(vecs[ids.index("p0")], new, atol=1e-5)  # reused from p5: the same bytes
    ids, vecs = store.embeddings("b", key, "image", as_="numpy")
    np.testing.assert_allclose(vecs[ids.index("p0")], original, atol=1e-5)
    assert invoke_cli(store.uri, "doctor", "--verify-files").exit_code == 0


def test_a_vanished_file_is_reported_by_doctor(lab):
    store, _, a, _, _ = lab
    (a / "p3.jpg").unlink()
    r = invoke_cli(store.uri, "doctor", "--verify-files", "--json")
    assert r.exit_code == 1
    (problem,) = json.loads(r.output)["problems"]
    assert problem["check"] == "file_missing" and problem["count"] == 1 and "p3" in problem["examples"][0]
    assert "--prune" in problem["message"]


def test_the_ray_worker_checks_the_bytes_too(lab):
    """The Ray engine's actor decodes through the same check (run here without a Ray cluster)."""
    from embedstore.engines.ray_engine import EncodeActor
    from embedstore.extractors import load_extractor

    store, model, a, _, photos = lab
    shutil.copy(photos[5], a / "p0.jpg")
    rows = store.samples("a", columns=["sample_id", "image_ref", "image_sha256"])
    actor = EncodeActor({"model_id": model}, "image", load_extractor(model).identity.key, dataset="a")
    out = actor(pa.table({"sample_id": rows["sample_id"], "content_sha256": rows["image_sha256"],
                          "input": rows["image_ref"]}))
    errors = dict(zip(out["sample_id"].to_pylist(), out["error"].to_pylist()))
    assert "changed on disk since ingest" in errors["p0"] and "re-ingest dataset 'a'" in errors["p0"]
    assert all(errors[s] is None for s in ("p1", "p2", "p3", "p4", "p5"))
    assert out.filter(out["error"].is_valid())["vector"].null_count == 1


def test_ingest_hashes_the_bytes_it_decoded(tmp_path):
    """The stored hash is of the file's bytes (one read), for a plain file and a derived (#fragment) one."""
    from embedstore.images import read_image
    from embedstore.keys import sha256_file, sha256_text

    (p,) = _photos(tmp_path / "one", 1)
    img, digest = read_image(str(p))
    assert digest == sha256_file(p) and img.size == (64, 48)
    import tifffile

    tif = tmp_path / "t.tiff"
    tifffile.imwrite(tif, np.zeros((5, 8, 8), np.uint16))
    _, derived = read_image(f"{tif}#bands=0,1,2")
    assert derived == sha256_text(f"{sha256_file(tif)}#bands=0,1,2")
