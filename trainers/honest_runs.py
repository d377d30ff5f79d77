"""Honest runs on a fixed split: every seed selected on the split's training rows, refitted, recorded.

:func:`run_split` is the single-split door of :func:`embedstore.trainers.train.train`,
:func:`~embedstore.trainers.train.train_arrays` and :func:`~embedstore.trainers.train.rerun`:
paper mode runs the authors' loop (:func:`embedstore.trainers.seed_runs.run_seeds`,
unchanged); honest heads read the split's rows through a
:class:`~embedstore.trainers.cv.FoldSource` whose ``train`` part is the split's
train **and** val rows, are selected on them and refitted on all of them
(:mod:`embedstore.trainers.select`), and carry the independent baseline of the
same rows (:mod:`embedstore.trainers.baseline`); the per-seed loop,
:func:`embedstore.trainers.select.honest_seeds`, is the one cross-validation
(:func:`embedstore.trainers.cv.run_cv`) uses for each fold.
"""

from __future__ import annotations

from typing import Any, Callable

from .fit_loop import HeadSpec
from .options import SelectOptions
from .protocol import Protocol
from .select import honest_seeds


def run_split(source, spec: HeadSpec, proto: Protocol, seeds: list[int], *, dataset: str,
              config: dict[str, Any], store=None, record: bool, progress: bool, group_id: str | None,
              select: SelectOptions | None = None, baseline: bool = True, rerun_of: str | None = None,
              parts=None, threads: int | None = None):
    """Every seed of ``spec`` on one fixed split (see the module docstring); a ``TrainResult``.

    ``source`` is a ``StoreSource`` (or, with ``parts=(folds, parts)`` from
    :func:`embedstore.trainers.cv.array_split`, an ``ArraySource``).
    """
    from embedstore.runs import new_run_id

    from .cv import store_split
    from .environment import capture
    from .fit_loop import torch_threads
    from .seed_runs import TrainResult, run_seeds, summarize_runs

    if not proto.rules.tests_once:
        return run_seeds(source, spec, proto, seeds, dataset=dataset, config=config, store=store, record=record,
                         progress=progress, group_id=group_id, rerun_of=rerun_of)
    if select is None:
        from .select import search_of

        select = SelectOptions(search=search_of(None, {}))
    folds, rows = parts if parts is not None else store_split(source)
    group_id = group_id or new_run_id().replace("run-", "grp-", 1)
    with torch_threads(config.get("threads", threads)):
        runs, scaling = honest_seeds(folds, rows, spec, proto, seeds, select=select, inner_seed=0, config=config,
                                     env=capture(), dataset=dataset, group_id=group_id,
                                     store=store if record else None, progress=progress, baseline=baseline,
                                     desc=f"{dataset} {spec.fusion}", rerun_of=rerun_of)
    # a store source shares its event log with the folds; arrays are served by the folds themselves
    return summarize_runs(TrainResult(dataset, spec.fusion, proto.mode, runs, group_id,
                                      {**config, "scaling": scaling}, source=folds if parts is not None else source))


def split_runner(select: SelectOptions, baseline: bool) -> Callable:
    """:func:`run_split` with a call's selection and baseline options (the runner ``resume_seeds`` trains with)."""
    def run(source, spec, proto, seeds, **kw):
        return run_split(source, spec, proto, seeds, select=select, baseline=baseline, **kw)
    return run
