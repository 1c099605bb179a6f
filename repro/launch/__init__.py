"""The run layer for sweeps: :mod:`.runner` (jobs, executors, status; in-process, process pool,
submitit/SLURM) and :mod:`.cli` (``repro sweep``). Each chapter's jobs come from its study's
``jobs.py`` (:mod:`repro.studies`)."""
