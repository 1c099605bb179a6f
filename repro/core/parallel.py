"""``[fn(x) for x in items]`` in worker processes: one tiny model per core.

On a CPU the small models of the cpu profiles train faster as one single-thread process per core than as one
process with several threads (two spinning OpenMP threads on a shared 2-core machine made APGD 10-50x slower
than one thread, measured for chapter 5). The studies of chapters 5 and 6 share this helper; every result also
goes through :mod:`repro.core.cache`, so a killed run resumes and the order of completion does not matter.

``fn`` must be a module-level function (spawned workers import it) and reads the shared inputs from
:data:`STATE`, which :func:`parallel_map` fills in every worker before the first item.
"""
from __future__ import annotations

import torch

__all__ = ["STATE", "parallel_map"]

#: the ``state`` of the running :func:`parallel_map` (data, configs), in the worker processes and in-process
STATE: dict = {}


def _init(state: dict, threads: int) -> None:
    torch.set_num_threads(int(threads))
    STATE.clear()
    STATE.update(state)


def parallel_map(fn, items: list, state: dict, jobs: int = 1, desc: str = "", progress: bool = True) -> list:
    """``[fn(x) for x in items]`` with ``state`` in :data:`STATE`, in ``jobs`` spawned worker processes of one
    torch thread each when ``jobs > 1`` (in this process, with its thread count, otherwise). Results come back
    in the order of ``items``. ``jobs`` is the profile's ``jobs`` (2 in ``cpu``); keep 1 on a GPU."""
    jobs = int(jobs or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if progress:
        from tqdm.auto import tqdm
    if jobs == 1 or len(items) <= 1:
        _init(state, torch.get_num_threads())
        it = tqdm(items, desc=desc, leave=False) if progress else items
        try:
            return [fn(x) for x in it]
        finally:
            STATE.clear()
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init,
                             initargs=(state, 1)) as ex:
        it = ex.map(fn, items)
        if progress:
            it = tqdm(it, total=len(items), desc=desc, leave=False)
        return list(it)
