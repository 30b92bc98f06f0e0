"""rnnlab's performance benchmarks (issue 7): ``python -m benchmarks.run [--quick]``.

One module per benchmark, each with a ``run(quick) -> dict`` that measures and returns the JSON
written to ``benchmarks/results/<name>.json``; :mod:`benchmarks.report` turns those files into
``docs/performance.md``. Timings are ratios against a baseline measured in the same run, with the
repetitions interleaved (A, B, A, B, ...) and summarised by medians: the machines are shared and
noisy, so no timing ever decides whether a test passes.
"""
