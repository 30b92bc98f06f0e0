"""The replication page (docs/results.md): read the sweeps, analyse each finding, write the page.

``python docs/make_results.py`` is the entry point. The modules, in the order the data flows:

- :mod:`replication.reader`: a sweep's trials and metrics from its Optuna study and MLflow runs.
- :mod:`replication.criteria`: the numbers the verdicts test (shared with the science tests).
- :mod:`replication.parts`: small statistics, tables, :class:`~replication.parts.Finding` and the
  rendering of its section; :mod:`replication.figures`: what the figures share.
- one module per finding, each with its analysis, figure, notes and ``FINDING``:
  :mod:`~replication.adding`, :mod:`~replication.copy_memory`, :mod:`~replication.digits`,
  :mod:`~replication.clipping`, :mod:`~replication.gradflow`, :mod:`~replication.depth`,
  :mod:`~replication.flossing`, :mod:`~replication.modern` (issue 20's cells; its paper-only
  profiles are ``Finding.paper_only``).
- :mod:`replication.realdata`: the descriptive section on the example sweeps
  (experiments/forecast.yaml, experiments/chars.yaml): no paper claim, no verdict.
- :mod:`replication.previous`: the page before issue 14's corrections, quoted (its verdicts, the
  criteria it did not meet, the figures that moved); :mod:`replication.changes`: the "What
  changed since" notes of the findings whose results moved. A finding added later needs neither.
- :mod:`replication.page`: the header, commands, summary, tolerances and cost, and
  :func:`~replication.page.build_page`.
"""
