"""Know the data before trusting a number: checks and drift read from the store's vectors.

* :func:`~embedstore.datacheck.check.run_checks`: near-duplicates and exact
  duplicates (a leak when they sit in different splits), group leaks in
  every split column, label issues from out-of-fold probabilities
  (cleanlab), and shortcut columns. The door with the linear probe (or a
  chosen head) is :func:`embedstore.trainers.checks.check`.
* :func:`~embedstore.datacheck.drift.drift`: two datasets, or two values of
  a column, compared per modality and model (domain-classifier ROC AUC
  with an interval, MMD with a permutation p-value, per-class centroid
  shifts).
* Findings are records of the ``checks`` table
  (:mod:`~embedstore.datacheck.records`), keyed by the table versions and
  settings they were computed from, so a re-run with nothing changed
  computes nothing, and :func:`~embedstore.datacheck.records.flagged_runs`
  names the runs that read flagged rows.
* :mod:`~embedstore.datacheck.section` draws the report's "data checks"
  section; :mod:`~embedstore.datacheck.explore` opens the map in
  embedding-atlas.
"""
