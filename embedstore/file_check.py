"""Do the files behind a dataset's samples still hold the bytes that were ingested?

A sample row stores its image's path (``image_ref``) and the sha256 of the
bytes ingest decoded (``image_sha256``). Every vector is keyed by that hash
and reused by it across datasets, so a file replaced on disk after ingest
must never be embedded under the old hash: extract checks each file as it
reads it (:func:`embedstore.extract_inputs.decode_rows`) and skips a changed
one with a line naming the file and the fix. :func:`changed_files` runs the
same check over whole datasets without embedding anything
(``embedstore doctor --verify-files``): it re-reads and hashes every file
(no decoding), so it costs one read of the dataset's images.

What a changed file means, and what re-ingest does
--------------------------------------------------
The stored vectors of that sample stay those of the ingested bytes (and
stay right for every other dataset holding those bytes). Re-ingesting the
dataset records the new file's hash: the sample's old vector then no longer
matches it, is never read again (it counts as stale, see
:mod:`embedstore.snapshot`), and the next extract computes the new file's
vector (or reuses one of identical content) and overwrites the old row in
place. Earlier table versions keep the old row, so runs pinned to them
re-execute as recorded.

Examples
--------
>>> import tempfile, os
>>> from PIL import Image
>>> from embedstore import Store
>>> from embedstore.ingest import ingest
>>> d = tempfile.mkdtemp()
>>> for i in range(2):
...     Image.new("RGB", (8, 8), (i, 0, 0)).save(os.path.join(d, f"{i}.png"))
>>> _ = open(os.path.join(d, "m.csv"), "w").write("id,image,label\\na,0.png,x\\nb,1.png,y\\n")
>>> store = Store(tempfile.mkdtemp() + "/s")
>>> _ = ingest(store, "manifest", d, name="toy", progress=False)
>>> changed_files(store)
[]
>>> Image.new("RGB", (8, 8), (9, 9, 9)).save(os.path.join(d, "1.png"))
>>> [(c.sample_id, c.state) for c in changed_files(store)]
[('b', 'changed')]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .formats import ToDict


@dataclass(frozen=True)
class FileChange(ToDict):
    """A sample whose file is not the ingested one.

    Attributes
    ----------
    dataset, sample_id : str
    path : str
        The file (``image_ref`` without its ``#`` fragment).
    state : {"changed", "missing"}
        Other bytes than ingested, or no file (or an unreadable one) at that path.
    stored : str
        The ingested ``image_sha256``.
    now : str or None
        The hash of the file's bytes now (``None`` when missing).
    """

    dataset: str
    sample_id: str
    path: str
    state: str
    stored: str
    now: str | None = None

    def line(self) -> str:
        """One line naming the file, what is wrong, and the fix."""
        if self.state == "missing":
            return (f"dataset '{self.dataset}' sample {self.sample_id}: image {self.path} is missing or unreadable; "
                    f"restore it, or re-ingest dataset '{self.dataset}' with --prune to drop the sample")
        return (f"dataset '{self.dataset}' sample {self.sample_id}: image {self.path} changed on disk since ingest "
                f"(sha256 now {str(self.now)[:12]}, ingested {self.stored[:12]}); re-ingest dataset "
                f"'{self.dataset}' (embedstore ingest ... --name {self.dataset}), then extract")


def file_state(ref: str, stored: str) -> tuple[str | None, str | None]:
    """``(state, hash now)`` of one ``image_ref``: state ``None`` (unchanged), ``changed`` or ``missing``."""
    from .images import content_hash, fragment_of, split_ref

    try:
        data = Path(split_ref(ref)[0]).read_bytes()
    except OSError:
        return "missing", None
    now = content_hash(data, fragment_of(ref))
    return (None if now == stored else "changed"), now


def changed_files(store, datasets: Sequence[str] | None = None, *, workers: int | None = None) -> list[FileChange]:
    """Samples of ``datasets`` (default: all) whose image file changed or vanished since ingest.

    Reads and hashes every referenced file (no decoding) with ``workers``
    threads (default: up to 4). Text-only datasets have nothing to check.

    Returns
    -------
    list of FileChange
        In dataset, then sample order.
    """
    from .cpu import cores

    out: list[FileChange] = []
    for dataset in datasets if datasets is not None else store.datasets():
        names = store.open_table(f"samples__{dataset}").schema.names
        if not {"image_ref", "image_sha256"} <= set(names):
            continue
        rows = store.samples(dataset, columns=["sample_id", "image_ref", "image_sha256"]).to_pylist()
        rows = [r for r in rows if r["image_ref"] and r["image_sha256"]]
        with ThreadPoolExecutor(max_workers=workers or min(4, cores())) as pool:
            states = list(pool.map(lambda r: file_state(r["image_ref"], r["image_sha256"]), rows))
        from .images import split_ref

        out += [FileChange(dataset, r["sample_id"], split_ref(r["image_ref"])[0], state, r["image_sha256"], now)
                for r, (state, now) in zip(rows, states) if state is not None]
    return out
