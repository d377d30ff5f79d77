"""Reading images referenced by sample rows, safely.

:func:`read_image` is the one place that turns an ``image_ref`` into an RGB
PIL image *and* the content hash of exactly the bytes it decoded: the file
is read once, hashed, and decoded from those same bytes, so a vector
computed from the image is always stored under the hash of what was
embedded (ingest stores that hash; extract compares it with the stored one,
see :mod:`embedstore.extract_inputs`). :func:`load_image` is the same
without the hash. Both convert CMYK, grayscale, palette and 16-bit images to
8-bit RGB, apply the EXIF orientation (a phone photo is embedded upright, as
every viewer shows it), refuse images whose decoded size is over the limit
(:func:`max_pixels`, checked from the header before any pixel is
allocated, for PIL and tifffile alike), and raise :class:`InputError` with
the file name for anything unreadable (missing, empty, truncated, not an
image).

Multi-band GeoTIFFs (SatelliteBench) are read with ``tifffile``; a ref may
carry a band selection fragment, e.g. ``img.tiff#bands=3,2,1&crop=224``
(0-based band indices into the file's bands, and a centre crop size);
``anchor=row`` centres the crop on the row midpoint on both axes, as the
SatelliteBench paper code did. :func:`read_bands` returns all bands. A ``#``
inside a file name is fine (:func:`split_ref` / :func:`join_ref`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, require

#: Default decoded-size limit, in pixels (width x height): PIL's own default guard.
MAX_PIXELS = 89_478_485
#: Environment variable that sets the limit for every decoder (``EMBEDSTORE_MAX_IMAGE_PIXELS=200000000``).
MAX_PIXELS_ENV = "EMBEDSTORE_MAX_IMAGE_PIXELS"
#: Bytes a decoded array may take per pixel of the limit (8-bit RGBA): caps many-band and 64-bit TIFFs too.
BYTES_PER_PIXEL = 4
#: EXIF/TIFF orientation -> PIL transpose (as ``PIL.ImageOps.exif_transpose``); 1 = as stored.
_ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                7: "TRANSVERSE", 8: "ROTATE_90"}


def max_pixels() -> int:
    """The decoded-size limit in pixels: ``$EMBEDSTORE_MAX_IMAGE_PIXELS``, else :data:`MAX_PIXELS`.

    The limit is read at every decode, so setting the variable raises it for
    ``ingest`` and ``extract`` alike (and for Ray workers, which get the
    driver's value).

    Examples
    --------
    >>> max_pixels() == MAX_PIXELS or bool(os.environ.get(MAX_PIXELS_ENV))
    True
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{MAX_PIXELS_ENV}={raw!r}: use a positive whole number of pixels, "
                         f"e.g. {MAX_PIXELS_ENV}=200000000 (default {MAX_PIXELS})")
    return value


def check_decoded_size(path: Any, width: int, height: int, nbytes: int | None = None, what: str = "") -> None:
    """Raise :class:`InputError` when an image of ``width`` x ``height`` (``nbytes`` decoded) is over the limit.

    Called with the header's numbers, before pixels are allocated.

    Examples
    --------
    >>> check_decoded_size("a.png", 100, 100)
    >>> check_decoded_size("big.tiff", 12000, 12000)
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: image big.tiff: decompression-bomb guard: 12000x12000 = 144,000,000 pixels is over the 89,478,485-pixel decoded-size limit; downscale it, or raise the limit: EMBEDSTORE_MAX_IMAGE_PIXELS=144000000
    """
    limit = max_pixels()
    pixels = int(width) * int(height)
    if pixels > limit:
        raise InputError(f"image {path}: decompression-bomb guard: {width}x{height} = {pixels:,} pixels is over "
                         f"the {limit:,}-pixel decoded-size limit; downscale it, or raise the limit: "
                         f"{MAX_PIXELS_ENV}={pixels}")
    if nbytes is not None and nbytes > limit * BYTES_PER_PIXEL:
        need = -(-int(nbytes) // BYTES_PER_PIXEL)
        raise InputError(f"image {path}: decompression-bomb guard: decoding it takes {int(nbytes):,} bytes{what}, "
                         f"over the {limit * BYTES_PER_PIXEL:,}-byte decoded-size limit ({BYTES_PER_PIXEL} bytes x "
                         f"{limit:,} pixels); downscale it, or raise the limit: {MAX_PIXELS_ENV}={need}")


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


def fragment_of(ref: str) -> str:
    """The raw ``k=v&...`` fragment of ``ref`` (``""`` when none), as :func:`join_ref` wrote it.

    Examples
    --------
    >>> fragment_of("a.tiff#bands=3,2,1&crop=224"), fragment_of("scan#1.png"), fragment_of("odd#crop=1#")
    ('bands=3,2,1&crop=224', '', '')
    """
    path = split_ref(ref)[0]
    return str(ref)[len(path) + 1:]


def content_hash(data: bytes, fragment: str = "") -> str:
    """The ``image_sha256`` of a file's bytes read through ``fragment`` (``#bands=...``).

    The hash is of the bytes; for a derived image (a fragment) the conversion
    options are hashed in, so another conversion is other content.

    Examples
    --------
    >>> content_hash(b"")[:8], content_hash(b"", "bands=0")[:8]
    ('e3b0c442', '5586ad8f')
    """
    from .keys import sha256_bytes, sha256_text

    digest = sha256_bytes(data)
    return sha256_text(f"{digest}#{fragment}") if fragment else digest


def read_image(ref: str) -> tuple[Any, str]:
    """``(RGB PIL.Image, content hash)`` of ``ref``: the file is read once, and the hash is of the bytes decoded.

    Raises
    ------
    InputError
        Naming the file and the problem (missing, zero bytes, not an image,
        truncated, over the decoded-size limit).

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> from embedstore.keys import sha256_file
    >>> p = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> Image.new("L", (4, 3)).save(p)
    >>> img, digest = read_image(p)
    >>> img.mode, img.size, digest == sha256_file(p)
    ('RGB', (4, 3), True)
    """
    p, data, opts = _read(ref)
    digest = content_hash(data, fragment_of(ref))
    return _decode(p, data, opts), digest


def _read(ref: str) -> tuple[Path, bytes, dict[str, str]]:
    """``(path, the file's bytes, fragment options)`` of ``ref``, or :class:`InputError` naming the file."""
    path, opts = split_ref(ref)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image {path}: file not found; check the dataset root or the image column")
    data = p.read_bytes()
    if not data:
        raise InputError(f"image {path}: file is empty (0 bytes); re-download or remove it")
    return p, data, opts


def _decode(p: Path, data: bytes, opts: dict[str, str]):
    if p.suffix.lower() in (".tif", ".tiff"):
        return _load_tiff(p, data, opts)
    return _load_pil(str(p), data)


def load_image(ref: str):
    """Open ``ref`` as an 8-bit RGB ``PIL.Image``, upright (:func:`read_image` without the hash).

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
    return _decode(*_read(ref))


def _load_pil(path: str, data: bytes):
    from PIL import Image, UnidentifiedImageError

    import warnings

    limit = max_pixels()
    Image.MAX_IMAGE_PIXELS = limit  # PIL's own guard agrees (it refuses above twice this in open())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            im = Image.open(io.BytesIO(data))
        with im:
            check_decoded_size(path, im.width, im.height)  # the header's size, before any pixel is decoded
            im.load()
            return to_rgb(upright(im, path))
    except InputError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own check in open(), above twice the limit
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "the image"
        raise InputError(f"image {path}: decompression-bomb guard: {size} is over the {limit:,}-pixel decoded-size "
                         f"limit; downscale it, or raise the limit: {MAX_PIXELS_ENV}="
                         f"{found.group(1) if found else 'PIXELS'}") from None
    except UnidentifiedImageError:
        raise InputError(f"image {path}: not a readable image file; replace or remove it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {path}: corrupt or truncated ({exc}); replace or remove it") from None


def orientation(im) -> int:
    """The EXIF orientation of a PIL image (1 = as stored; 1 when absent or unreadable)."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the pixels are still the image as stored
        return 1
    return value if value in _ORIENTATION else 1


def upright(im, path: Any = "", value: int | None = None):
    """``im`` turned as its orientation tag (EXIF 0x0112, or ``value``) says, as every viewer shows it.

    Examples
    --------
    >>> from PIL import Image
    >>> im = Image.new("RGB", (4, 2))
    >>> exif = im.getexif(); exif[0x0112] = 6  # "rotate 90 CW to view"
    >>> im.info["exif"] = exif.tobytes()
    >>> upright(Image.open(_png(im))).size
    (2, 4)
    """
    from PIL import Image

    value = orientation(im) if value is None else value
    if value not in _ORIENTATION:
        return im
    return im.transpose(getattr(Image.Transpose, _ORIENTATION[value]))


def _png(im) -> Any:
    """``im`` saved as PNG with its EXIF, in memory (for the examples)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", exif=im.info.get("exif", b""))
    buf.seek(0)
    return buf


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


def read_bands(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """All bands of a TIFF as an ``(H, W, bands)`` array (bands-first files are transposed).

    The decoded size is checked from the header first (:func:`check_decoded_size`).

    Raises
    ------
    InputError
        When the file cannot be read as a TIFF or is over the decoded-size limit.
    """
    return _read_tiff(path, Path(path).read_bytes() if data is None else data)[0]


def _read_tiff(path: Any, data: bytes) -> tuple[np.ndarray, int]:
    """``(H x W x bands array, orientation tag)`` of a TIFF held in ``data``."""
    require("tifffile", "embedstore[satellite]")
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            shape, dtype, axes = tuple(series.shape), np.dtype(series.dtype), str(series.axes)
            if "Y" in axes and "X" in axes:
                height, width = shape[axes.index("Y")], shape[axes.index("X")]
            else:
                height, width = sorted(shape)[-2:] if len(shape) > 1 else (1, shape[0] if shape else 0)
            check_decoded_size(path, width, height, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
                               f" ({'x'.join(map(str, shape))} {dtype})")
            tag = tif.pages[0].tags.get(274)
            arr = series.asarray()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"image {path}: unreadable TIFF ({exc}); replace or remove it") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim == 3 and arr.shape[0] < arr.shape[-1] and arr.shape[0] <= 16:
        arr = np.moveaxis(arr, 0, -1)  # bands-first -> bands-last
    value = tag.value if tag is not None else 1
    return arr, int(value) if isinstance(value, int) or str(value).isdigit() else 1


def _load_tiff(p: Path, data: bytes, opts: dict[str, str]):
    from PIL import Image

    arr, turn = _read_tiff(p, data)
    if "bands" in opts:
        bands = [int(b) for b in opts["bands"].split(",")]
    else:  # a plain TIFF: gray (+ alpha) is gray, RGB(A...) is its first three bands
        bands = [0] if arr.shape[-1] < 3 else [0, 1, 2]
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
    return upright(Image.fromarray(np.ascontiguousarray(arr), mode="RGB"), p, turn)


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
