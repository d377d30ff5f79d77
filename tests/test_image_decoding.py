"""One decoded-size limit for every image decoder, and photos embedded upright (EXIF orientation).

Real files: a 12000x12000 TIFF and PNG of a few hundred kB on disk (the
decompression bombs of the issue), small TIFFs with many bands, JPEG and PNG
photos carrying an EXIF orientation as phones write them.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from embedstore.errors import InputError
from embedstore.images import MAX_PIXELS, MAX_PIXELS_ENV, load_image, read_bands
from tests.helpers import invoke_cli, one_line_error

SIDE = 12000  # 144 Mpx: over the default limit of 89.5 Mpx


def tiff_bomb(path: Path, side: int = SIDE) -> Path:
    """A ``side`` x ``side`` 8-bit TIFF of zlib-compressed zero tiles (~200 kB on disk, 144 MB decoded)."""
    import tifffile

    tiles = (-(-side // 256)) ** 2
    tile = zlib.compress(bytes(256 * 256))
    tifffile.imwrite(path, (tile for _ in range(tiles)), shape=(side, side), dtype=np.uint8, tile=(256, 256),
                     compression="zlib")
    return path


def png_bomb(path: Path, side: int = SIDE) -> Path:
    from PIL import Image

    Image.new("1", (side, side)).save(path)
    return path


def _peak_mb(fn) -> float:
    """Peak Python/NumPy allocation (MB) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 1e6


@pytest.mark.parametrize("make", [tiff_bomb, png_bomb], ids=["tiff", "png"])
def test_a_tiny_file_of_huge_dimensions_is_refused_from_its_header(tmp_path, make):
    path = make(tmp_path / f"bomb.{'tiff' if make is tiff_bomb else 'png'}")
    assert path.stat().st_size < 1_000_000
    caught = []

    def decode():
        with pytest.raises(InputError) as err:
            load_image(str(path))
        caught.append(str(err.value))

    assert _peak_mb(decode) < 20  # refused before the 144 MB of pixels are allocated
    assert caught[0] == (f"image {path}: decompression-bomb guard: 12000x12000 = 144,000,000 pixels is over the "
                         f"{MAX_PIXELS:,}-pixel decoded-size limit; downscale it, or raise the limit: "
                         f"{MAX_PIXELS_ENV}=144000000")


def test_the_limit_is_one_setting_for_both_decoders(tmp_path, monkeypatch):
    import tifffile
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tiff", np.full((30, 40, 3), 7, np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")  # lowered: 40x30 = 1200 pixels is over it
    for name in ("a.png", "a.tiff"):
        with pytest.raises(InputError, match=r"40x30 = 1,200 pixels is over the 1,000-pixel decoded-size limit"):
            load_image(str(tmp_path / name))
    monkeypatch.setenv(MAX_PIXELS_ENV, "1200")
    assert [load_image(str(tmp_path / n)).size for n in ("a.png", "a.tiff")] == [(40, 30), (40, 30)]
    # many bands count too: 200 float64 bands of 10x10 = 160 kB decoded, over 4 bytes x 1,200 pixels
    tifffile.imwrite(tmp_path / "bands.tiff", np.zeros((200, 10, 10), np.float64))
    with pytest.raises(InputError, match=r"decoding it takes 160,000 bytes \(200x10x10 float64\), over the "
                                         r"4,800-byte decoded-size limit"):
        read_bands(tmp_path / "bands.tiff")
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match=rf"{MAX_PIXELS_ENV}='lots': use a positive whole number of pixels"):
        load_image(str(tmp_path / "a.png"))


def test_raising_the_limit_lets_a_big_image_through(tmp_path, monkeypatch):
    path = tiff_bomb(tmp_path / "big.tiff", side=3000)  # 9 Mpx
    monkeypatch.setenv(MAX_PIXELS_ENV, "8000000")
    with pytest.raises(InputError, match="3000x3000"):
        load_image(str(path))
    monkeypatch.setenv(MAX_PIXELS_ENV, "9000000")
    assert load_image(str(path)).size == (3000, 3000)


def test_ingest_skips_and_reports_both_bombs_and_writes_no_pixel(tmp_path):
    from embedstore import Store
    from PIL import Image

    root = tmp_path / "data"
    root.mkdir()
    tiff_bomb(root / "t.tiff")
    png_bomb(root / "p.png")
    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(root / f"ok{i}.png")
    rows = ["t,t.tiff,a", "p,p.png,b"] + [f"ok{i},ok{i}.png,{'ab'[i % 2]}" for i in range(4)]
    (root / "m.csv").write_text("id,image,label\n" + "\n".join(rows) + "\n")
    r = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", root / "m.csv", "--name", "d", "--json")
    assert r.exit_code == 0, r.output
    skipped = {s["sample_id"]: s["reason"] for s in json.loads(r.output)["skipped"]}
    assert set(skipped) == {"t", "p"} and all("decompression-bomb guard" in v for v in skipped.values())
    assert Store(tmp_path / "s").samples("d").num_rows == 4


# -- EXIF orientation (item 7) ---------------------------------------------------------------
def _two_colour(width: int = 40, height: int = 20) -> np.ndarray:
    """Left half red, right half blue (as stored on disk)."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (220, 20, 20)
    arr[:, width // 2:] = (20, 20, 220)
    return arr


def _with_orientation(arr: np.ndarray, path: Path, value: int, **save) -> Path:
    from PIL import Image

    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = value
    im.save(path, exif=exif.tobytes(), **save)
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_photo_with_an_exif_orientation_is_read_upright(tmp_path, suffix):
    path = _with_orientation(_two_colour(), tmp_path / f"phone{suffix}", 6, **({"quality": 95} if suffix == ".jpg"
                                                                              else {}))
    img = np.asarray(load_image(str(path)))
    assert img.shape == (40, 20, 3)  # orientation 6: stored landscape, shown portrait (rotated 90° clockwise)
    assert img[2, 10, 0] > 150 and img[-3, 10, 2] > 150  # red (the stored left) on top, blue at the bottom


def test_upright_photos_embed_as_their_rotated_pixels_and_thumbnail_upright(tmp_path):
    from PIL import Image

    from embedstore.extractors import load_extractor
    from embedstore.report import _thumbnail
    from tests.tiny_models import make_tiny_vit

    tagged = _with_orientation(_two_colour(), tmp_path / "tagged.png", 8)  # 8: rotated 90° counter-clockwise
    plain = tmp_path / "plain.png"
    Image.fromarray(_two_colour()).transpose(Image.Transpose.ROTATE_90).save(plain)
    ext = load_extractor(make_tiny_vit(tmp_path / "vit"))
    vecs = ext.forward("image", ext.prepare("image", [load_image(str(tagged)), load_image(str(plain))]))
    np.testing.assert_array_equal(vecs[0], vecs[1])
    import base64
    import re

    src = _thumbnail(str(tagged))
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", src).group(1))
    assert Image.open(io.BytesIO(png)).size == (20, 40)  # portrait, as the photo is shown


def test_extract_stores_the_upright_vector_for_png_and_tiff_orientation_tags(tmp_path):
    """Through ingest and extract into a real store: a tagged PNG and a tagged TIFF get the vector of the turned photo."""
    import tifffile
    from PIL import Image

    from embedstore import Store
    from tests.tiny_models import make_tiny_vit

    root = tmp_path / "data"
    root.mkdir()
    stored = _two_colour()  # landscape on disk; orientation 8 says "turn 90° counter-clockwise to view"
    _with_orientation(stored, root / "tagged.png", 8)
    tifffile.imwrite(root / "tagged.tiff", stored, photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    Image.fromarray(stored).transpose(Image.Transpose.ROTATE_90).save(root / "plain.png")  # the same, turned
    Image.fromarray(stored).save(root / "sideways.png")  # the same pixels without a tag: a different photo
    names = ["tagged.png", "tagged.tiff", "plain.png", "sideways.png"]
    (root / "m.csv").write_text("id,image,label\n" + "".join(f"{n.replace('.', '_')},{n},{'ab'[i % 2]}\n"
                                                             for i, n in enumerate(names)))
    vit = make_tiny_vit(tmp_path / "vit")
    assert invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", root, "--name", "d").exit_code == 0
    r = invoke_cli(tmp_path / "s", "extract", "d", "--model", vit, "--no-progress", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["results"][0]["computed"] == 4, r.output
    ids, vecs = Store(tmp_path / "s").embeddings("d", str(vit), "image", as_="numpy")
    got = dict(zip(ids, vecs))
    np.testing.assert_allclose(got["tagged_png"], got["plain_png"], atol=1e-6)
    np.testing.assert_allclose(got["tagged_tiff"], got["plain_png"], atol=1e-6)
    assert np.abs(got["sideways_png"] - got["plain_png"]).max() > 1e-3  # the orientation changes what the model sees


def test_extract_refuses_a_bomb_that_replaced_an_ingested_file(tmp_path):
    """A file swapped for a bomb after ingest: one skipped line at extract, the other rows embedded."""
    import shutil

    from PIL import Image

    from tests.tiny_models import make_tiny_vit

    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 60, 10, 10)).save(root / f"s{i}.png")
    (root / "m.csv").write_text("id,image,label\n" + "".join(f"s{i},s{i}.png,{'ab'[i % 2]}\n" for i in range(3)))
    assert invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", root, "--name", "d").exit_code == 0
    shutil.copy(png_bomb(tmp_path / "bomb.png"), root / "s1.png")
    r = invoke_cli(tmp_path / "s", "extract", "d", "--model", make_tiny_vit(tmp_path / "vit"), "--no-progress",
                   "--json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.output)["results"]
    assert res["computed"] == 2 and [s["sample_id"] for s in res["skipped"]] == ["s1"]
    assert "decompression-bomb guard" in res["skipped"][0]["reason"]


def test_a_bad_limit_setting_stops_ingest_in_one_line(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("id,image,label\na,a.png,x\n")
    monkeypatch.setenv(MAX_PIXELS_ENV, "-5")
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv", "--no-progress"),
                   f"{MAX_PIXELS_ENV}='-5'", "positive whole number")
    from embedstore import Store

    assert not Store(tmp_path / "s").datasets()
