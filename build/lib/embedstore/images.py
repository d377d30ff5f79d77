"""Reading images referenced by sample rows, safely.

:func:`load_image` is the one place that turns an ``image_ref`` into an RGB
PIL image. It converts CMYK, grayscale, palette and 16-bit images to 8-bit
RGB, refuses decompression bombs, and raises :class:`InputError` with the
file name for anything unreadable (missing, empty, truncated, not an image).

Multi-band GeoTIFFs (SatelliteBench) are read with ``tifffile``; a ref may
carry a band selection fragment, e.g. ``img.tiff#bands=3,2,1&crop=224``
(0-based band indices into the file's bands, and a centre crop size);
``anchor=row`` centres the crop on the row midpoint on both axes, as the
SatelliteBench paper code did. :func:`read_bands` returns all bands. A ``#``
inside a file name is fine (:func:`split_ref` / :func:`join_ref`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError, require

#: Largest image accepted, in pixels (PIL's bomb guard raises above 2x this).
MAX_PIXELS = 89_478_485


def split_ref(ref: str) -> tuple[str, dict[str, str]]:
    """Split ``path#k=v&k2=v2`` into the path and its options.

    The fragment is what follows the *last* ``#``, and only when it is
    empty or made of ``k=v`` pairs; otherwise the ``#`` belongs to the file
    name. So ``scan#1.png`` is a file name, and a file whose name itself ends
    like a fragment is written with an empty one (``a#crop=1#``, see
    :func:`join_ref`). Every ref written by earlier releases reads the same.

    Examples
    --------
    >>> split_ref("a.tiff#bands=3,2,1&crop=224")
    ('a.tiff', {'bands': '3,2,1', 'crop': '224'})
    >>> split_ref("scans/scan#1.png")
    ('scans/scan#1.png', {})
    >>> split_ref("sat#2.tiff#bands=0")
    ('sat#2.tiff', {'bands': '0'})
    >>> split_ref("odd#crop=1#")
    ('odd#crop=1', {})
    """
    ref = str(ref)
    path, sep, frag = ref.rpartition("#")
    if not sep:
        return ref, {}
    parts = frag.split("&") if frag else []
    if not all("=" in p and p.split("=", 1)[0] for p in parts):
        return ref, {}  # not a fragment: the '#' is part of the file name
    return path, dict(p.split("=", 1) for p in parts)


def join_ref(path: str, fragment: str = "") -> str:
    """The ``image_ref`` of ``path`` with an optional ``k=v&...`` fragment (inverse of :func:`split_ref`).

    A path that would otherwise read back as a path plus a fragment gets an
    explicit empty fragment, so that it always reads back as itself.

    Examples
    --------
    >>> join_ref("a.tiff", "bands=0")
    'a.tiff#bands=0'
    >>> join_ref("scan#1.png")
    'scan#1.png'
    >>> join_ref("odd#crop=1")
    'odd#crop=1#'
    """
    if fragment or split_ref(path)[0] != path:
        return f"{path}#{fragment}"
    return path


def load_image(ref: str):
    """Open ``ref`` as an 8-bit RGB ``PIL.Image``.

    Raises
    ------
    InputError
        Naming the file and the problem (missing, zero bytes, not an image,
        truncated, too large).

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> p = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> Image.new("L", (4, 3)).save(p)
    >>> load_image(p).mode, load_image(p).size
    ('RGB', (4, 3))
    """
    path, opts = split_ref(ref)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image {path}: file not found; check the dataset root or the image column")
    if p.stat().st_size == 0:
        raise InputError(f"image {path}: file is empty (0 bytes); re-download or remove it")
    if p.suffix.lower() in (".tif", ".tiff"):
        return _load_tiff(p, opts)
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"image {path}: {im.width}x{im.height} exceeds the {MAX_PIXELS}-pixel "
                                 "decompression-bomb guard; downscale it first")
            im.load()
            return to_rgb(im)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"image {path}: exceeds the {MAX_PIXELS}-pixel decompression-bomb guard; "
                         "downscale it first") from None
    except UnidentifiedImageError:
        raise InputError(f"image {path}: not a readable image file; replace or remove it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {path}: corrupt or truncated ({exc}); replace or remove it") from None


def to_rgb(im):
    """Convert any PIL image (CMYK, L, P, I;16, RGBA...) to 8-bit RGB."""
    from PIL import Image

    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() or 1.0
        arr = (arr / (65535.0 if hi > 255 and im.mode.startswith("I;16") else hi) * 255.0)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def read_bands(path: str | Path) -> np.ndarray:
    """All bands of a TIFF as an ``(H, W, bands)`` array (bands-first files are transposed).

    Raises
    ------
    InputError
        When the file cannot be read as a TIFF.
    """
    require("tifffile", "embedstore[satellite]")
    import tifffile

    try:
        arr = tifffile.imread(path)
    except Exception as exc:
        raise InputError(f"image {path}: unreadable TIFF ({exc}); replace or remove it") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim == 3 and arr.shape[0] < arr.shape[-1] and arr.shape[0] <= 16:
        arr = np.moveaxis(arr, 0, -1)  # bands-first -> bands-last
    return arr


def _load_tiff(p: Path, opts: dict[str, str]):
    from PIL import Image

    arr = read_bands(p)
    bands = [int(b) for b in opts.get("bands", "0,1,2").split(",")]
    if max(bands) >= arr.shape[-1]:
        raise InputError(f"image {p}: has {arr.shape[-1]} bands, asked for bands {bands}")
    arr = arr[:, :, bands]
    if "crop" in opts:
        arr = centre_crop(arr, int(opts["crop"]), opts.get("anchor", "centre"))
    if "div" in opts:  # the paper notebook's x / 255 then an 8-bit save (inferred): saturates above 255
        arr = (np.clip(arr.astype(np.float64) / float(opts["div"]), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float64) / max(float(arr.max()), 1.0) * 255.0, 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


def centre_crop(arr: np.ndarray, size: int, anchor: str = "centre") -> np.ndarray:
    """Centre crop an (H, W, C) array to ``size``×``size`` (clipped to the image).

    ``anchor="row"`` centres both axes on the row midpoint ``H // 2`` (the
    SatelliteBench paper code's crop).

    Examples
    --------
    >>> centre_crop(np.zeros((10, 12, 3)), 4).shape
    (4, 4, 3)
    >>> a = np.arange(7 * 9).reshape(7, 9, 1)
    >>> int(centre_crop(a, 2)[0, 0, 0]), int(centre_crop(a, 2, "row")[0, 0, 0])
    (21, 20)
    """
    h, w = arr.shape[:2]
    if anchor == "row":
        mid = h // 2
        top = left = max(0, mid - size // 2)
    elif anchor == "centre":
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    else:
        raise InputError(f"crop anchor {anchor!r}: use 'centre' or 'row'")
    return arr[top:top + size, left:left + size]
