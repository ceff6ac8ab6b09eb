"""``make reproduce-tables`` / ``predvis reproduce``: every paper table from one command (docs/reproduce.md).

One YAML file per table cell in ``experiments/cells/`` (the long profile: ``experiments/cells/long/``)
(:mod:`predvis.reproduce.cells`); the collector (:mod:`predvis.reproduce.collector`) trains and probes
what is missing through the job runner (:mod:`predvis.jobs`), resumes what was interrupted, skips what is
done, and writes ``tables/<profile>/`` (:mod:`predvis.reproduce.tables`) with a ``README.md`` index and
every number linked to the run it came from. The command: :mod:`predvis.reproduce.command`.
"""
