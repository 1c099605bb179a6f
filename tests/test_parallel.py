"""repro.core.parallel: worker processes give the same results, in order, as the in-process loop, and the
chapter-6 runs use it (the cpu profile's ``jobs: 2``)."""
from __future__ import annotations

import pytest
import torch

from repro.core import cache
from repro.core.parallel import STATE, parallel_map
from repro.studies.ch6_samon import experiment as ch6
from repro.studies.ch6_samon import train as tr


def test_bad_jobs_and_state_is_cleared():
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        parallel_map(str, [1], {}, jobs=-1, progress=False)
    assert parallel_map(str, [3, 1, 2], {"a": 1}, jobs=1, progress=False) == ["3", "1", "2"]
    assert STATE == {}


def test_ch6_runs_in_two_workers_equal_the_in_process_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    data = ch6.make_data(dict(seed=0, resolution=16, n_train_per_class=8, n_val_per_class=2, n_test_per_class=4))
    d = {k: v for k, v in data.items() if k != "num_classes"}
    cfg = dict(epochs=1, lr=0.1, batch_size=32, weight_decay=5e-4, momentum=0.9, augment=False)
    specs = [ch6.RunSpec(method="sgd", seed=0), ch6.RunSpec(method="sam", variant="sam", rho=0.1, seed=1),
             ch6.RunSpec(method="sam", variant="sam", params="only_norm", rho=0.5, seed=1)]

    def weights():
        # run_many returns results without weights (ch6_run); the weights of the same trainings come from the
        # local ch6_train entries, so reading them must not train again
        n0 = len(cache.EVENTS)
        w = {s: tr.run_weights(d, "wrn10_1", data["num_classes"], cfg, s) for s in specs}
        assert not [e for e in cache.EVENTS[n0:] if e[0] == "ch6_train" and e[2] == "miss"]
        return w

    two, _ = ch6.run_many(d, "wrn10_1", data["num_classes"], cfg, specs, progress=False, jobs=2)
    w2 = weights()
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache1"))   # a fresh cache: really train again
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the workers' setting, so the arithmetic is the same
    try:
        one, _ = ch6.run_many(d, "wrn10_1", data["num_classes"], cfg, specs, progress=False, jobs=1)
    finally:
        torch.set_num_threads(threads)
    w1 = weights()
    cols = ["method", "variant", "mode", "rho", "seed", "val_acc", "test_acc"]
    assert two[cols].equals(one[cols])
    for s in specs:
        assert w1[s].keys() == w2[s].keys()
        for k, v in w1[s].items():
            assert torch.equal(v, w2[s][k]), (s, k)
