"""One job runner for ``predvis reproduce`` and the studies (docs/scaling.md).

A job (:class:`~predvis.jobs.runner.Job`) is a name, a module-level function and its argument, where its
record goes (one JSON file per finished job) and how to tell that it is done. :func:`~predvis.jobs.runner.run`
plans (skips what is done), claims each job (a lock file holding this process's pid and host), runs the jobs
through a launcher, writes each record as its job finishes, and shows one overall progress bar with an ETA.
A rerun resumes: finished jobs are skipped, interrupted ones run again (a training resumes from its last
checkpoint on its own). Launchers (:mod:`predvis.jobs.launchers`): ``local`` (each job in its own process of
one torch thread, N at a time; Ctrl-C interrupts them cleanly) and ``slurm`` (one SLURM job per job through
submitit).
"""
