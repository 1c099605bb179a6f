"""Contract tests generated from the registries (issue 19 Sec. 3), in the spirit of scikit-learn's
``check_estimator``: every registered detector, unlearning loss, SAM variant, SAM parameter
selection and sharpness definition is checked without a hand-written test:

* every hyperparameter changes the output on a generic input, or the library says it is inert
  (``InertParameterWarning`` naming it) or rejects it (``ValueError`` naming it);
* bad values raise ``ValueError`` naming the parameter;
* detectors: ``fit`` returns self, ``score`` is pure (same output twice, no attribute changes) and
  finite.

A new ``@register(...)`` is parametrised here automatically. The only test-side knowledge is the
tables below: constructor arguments a generic input needs (``FIT_KW``), alternative values where
the generic rule (halve a number, flip a bool) is invalid (``ALT``), and parameters whose every
value is valid (``ANY_VALUE``, e.g. seeds), so that no bad value exists.
"""
from __future__ import annotations

import copy
import inspect
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import repro.ood.related  # noqa: F401  (registers the appendix's detectors)
from repro.core.registry import InertParameterWarning
from repro.ood.detectors import Head
from repro.ood.detectors.base import DETECTORS
from repro.sam import SAM
from repro.sam.selection import SELECTIONS
from repro.sam.variants import VARIANTS
from repro.sharpness.definitions import DEFINITIONS
from repro.unlearning.losses import LOSSES

# ----------------------------------------------------------------------------- shared helpers
FIT_KW = {  # generic-input constructor arguments (the paper's defaults need ImageNet-sized data)
    ("detector", "knn"): dict(k=10), ("detector", "ssd_plus"): dict(n_clusters=9),
    ("detector", "nnguide"): dict(k=5, bank_fraction=0.2),
    ("detector", "gen"): dict(M=3),
    ("loss", "rmu"): dict(layer=0),
    ("selection", "blocks"): dict(prefixes=["1", "4"]),
    # masks must be updated within the three generic steps for the update hyperparameters to act
    ("selection", "ssam_f"): dict(update_every=1), ("selection", "ssam_d"): dict(update_every=1),
}
ALT = {  # alternative values where "halve it / flip it" is not valid or not informative
    ("detector", "kl_matching", "group_by"): "label", ("detector", "vim", "dim"): 4,
    ("detector", "gen", "M"): 2, ("detector", "ash_s", "percentile"): 50.0,
    ("detector", "knn", "k"): 3, ("detector", "nnguide", "k"): 2,
    ("loss", "jensun", "variant"): "code_v2", ("loss", "simnpo", "delta"): 1.0,
    ("selection", "blocks", "prefixes"): ["4"],
    ("selection", "only_norm", "norm_types"): (nn.LayerNorm,),
    ("selection", "no_norm", "norm_types"): (nn.LayerNorm,),
    ("selection", "blocks", "norm_types"): (nn.LayerNorm,),
    ("selection", "random_mask", "resample_every"): 1, ("selection", "ssam_f", "update_every"): 2,
    ("selection", "ssam_d", "update_every"): 2, ("selection", "ssam_d", "total_steps"): 3,
    ("selection", "ssam_f", "sparsity"): 0.5, ("selection", "ssam_d", "sparsity"): 0.5,
    ("selection", "random_mask", "sparsity"): 0.5,
}
ANY_VALUE = {"seed", "delta", "steering_coeff", "normalize", "norm_types", "prefixes"}


def alternative(kind, name, param, default):
    if (kind, name, param) in ALT:
        return ALT[kind, name, param]
    if isinstance(default, bool):
        return not default
    if param == "seed":
        return int(default) + 1
    if isinstance(default, int):
        return max(1, int(default) // 2) if default > 1 else int(default) + 1
    if isinstance(default, float):
        return default * 0.5 if default != 0 else 0.5
    if default is None:
        return 0.5
    pytest.fail(f"{kind} {name!r}: no generic alternative for {param}={default!r}; add one to ALT in {__file__}")


def bad_values(default):
    if isinstance(default, bool) or default is None:
        return []
    if isinstance(default, int):
        return [-1]
    if isinstance(default, float):
        return [-1.0, float("nan")]
    if isinstance(default, str):
        return ["__not_a_valid_value__"]
    return []


def hyperparams(registry, name):
    return {k: v for k, v in registry.params(name).items() if v is not inspect.Parameter.empty}


def changes_or_declared(kind, name, param, run_default, run_alt):
    """The contract for one hyperparameter: the output changes, or the library warns it is inert,
    or rejects the value with a ValueError naming it."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            out_alt = run_alt()
        except ValueError as e:
            assert param in str(e), f"{kind} {name!r}: ValueError for {param} does not name it: {e}"
            return
    if any(issubclass(x.category, InertParameterWarning) and repr(param) in str(x.message) for x in w):
        return
    out_def = run_default()
    assert not _same(out_def, out_alt), (f"{kind} {name!r}: hyperparameter {param!r} changes nothing on the generic "
                                         "input and is neither warned about as inert nor rejected")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), atol=1e-9, rtol=1e-7))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.allclose(a, b, atol=1e-12, rtol=1e-9)
    return a == b


def check_bad_values(kind, name, param, default, build):
    if param in ANY_VALUE:
        return
    for bad in bad_values(default):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match=param):
                build(bad)


# ----------------------------------------------------------------------------- detectors
@pytest.fixture(scope="module")
def det_data():
    rng = np.random.default_rng(0)
    C, D, N = 4, 16, 400
    mu = rng.normal(0, 3, (C, D))
    y = np.repeat(np.arange(C), N // C)
    f = np.abs(mu[y] + rng.normal(0, 1, (N, D)) @ (rng.normal(0, 1, (D, D)) / 4) + 1.0)
    W, b = rng.normal(0, 1, (C, D)), rng.normal(0, 1, C)
    ft = np.abs(rng.normal(0, 3, (60, D)) + 1.0)
    return dict(f=f, y=y, lg=f @ W.T + b, head=Head(W, b), ft=ft, lgt=ft @ W.T + b)


def _det(name, **hp):
    return DETECTORS.get(name, **{**FIT_KW.get(("detector", name), {}), **hp})


def _fit_score(name, d, **hp):
    return _det(name, **hp).fit(d["f"], d["lg"], d["y"], d["head"]).score(d["ft"], d["lgt"])


@pytest.mark.parametrize("name", DETECTORS.list(sorted=True))
def test_detector_contract(name, det_data):
    d = det_data
    det = _det(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert det.fit(d["f"], d["lg"], d["y"], d["head"]) is det, f"{name}: fit must return self"
        state = pickle.dumps(det.__dict__)
        s1 = det.score(d["ft"], d["lgt"])
        s2 = det.score(d["ft"], d["lgt"])
    assert s1.shape == (len(d["ft"]),) and np.isfinite(s1).all(), f"{name}: scores must be finite, one per row"
    assert np.array_equal(s1, s2), f"{name}: score is not deterministic"
    assert pickle.dumps(det.__dict__) == state, f"{name}: score changed the detector's attributes"


@pytest.mark.parametrize("name,param", [(n, p) for n in DETECTORS.list(sorted=True)
                                        for p in hyperparams(DETECTORS, n)])
def test_detector_hyperparameter_contract(name, param, det_data):
    default = {**hyperparams(DETECTORS, name), **FIT_KW.get(("detector", name), {})}[param]
    alt = alternative("detector", name, param, default)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        changes_or_declared("detector", name, param, lambda: _fit_score(name, det_data),
                            lambda: _fit_score(name, det_data, **{param: alt}))
        check_bad_values("detector", name, param, default,
                         lambda v: _fit_score(name, det_data, **{param: v}))


# ----------------------------------------------------------------------------- unlearning losses
class TinyLM(nn.Module):
    def __init__(self, V=11, d=6):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.lin = nn.Embedding(V, d), nn.Linear(d, V)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        h = self.emb(input_ids)
        out = type("O", (), {})()
        out.logits = self.lin(torch.tanh(h))
        out.hidden_states = (h, torch.tanh(h))
        return out


def _enc(seed, B=4, T=6, V=11):
    from repro.unlearning.data import Encoded

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, T), generator=g)
    labels = ids.clone()
    labels[:, :3] = -100
    return Encoded(ids, torch.ones(B, T, dtype=torch.long), labels)


def _unlearned_weights(name, **hp):
    """The loss's output on a generic input: the weights after two trainer steps (covers
    hyperparameters the trainer reads, e.g. NPO+SAM's rho)."""
    from repro.unlearning.data import UnlearnSets
    from repro.unlearning.trainer import unlearn

    loss = LOSSES.get(name, **{**FIT_KW.get(("loss", name), {}), **hp})
    m = TinyLM()
    sets = UnlearnSets(_enc(0), _enc(1), _enc(2), "No idea", [4, 5])
    unlearn(m, loss, sets, steps=2, lr=1e-2, batch_size=4, warmup=1, schedule="constant")
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize("name,param", [(n, p) for n in LOSSES.list(sorted=True) for p in hyperparams(LOSSES, n)])
def test_unlearning_loss_hyperparameter_contract(name, param):
    default = {**hyperparams(LOSSES, name), **FIT_KW.get(("loss", name), {})}[param]
    alt = alternative("loss", name, param, default)
    changes_or_declared("loss", name, param, lambda: _unlearned_weights(name),
                        lambda: _unlearned_weights(name, **{param: alt}))
    check_bad_values("loss", name, param, default, lambda v: LOSSES.get(name, **{param: v}))


@pytest.mark.parametrize("name", LOSSES.list(sorted=True))
def test_unlearning_loss_output_finite(name):
    assert all(torch.isfinite(p).all() for p in _unlearned_weights(name))


# ----------------------------------------------------------------------------- SAM variants and selections
def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3))


def _grads(model, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()


def _eps(variant=None, params="all", **kw):
    m = _net()
    opt = SAM(m, torch.optim.SGD(m.parameters(), lr=0.1), rho=0.1, variant=variant or "sam", params=params, **kw)
    out = []
    for step in range(3):
        _grads(m, step)
        opt.selection.update(opt.entries, step)
        out += [e for e in opt.perturbation() if e is not None]
        opt.step_count += 1
    return out


VARIANT_PARAMS = {"eta": (lambda v: 0.3 if v.default_eta == 0 else v.default_eta * 2, [-1.0, float("nan")]),
                  "normalize_bias": (lambda v: not v.normalize_bias, [])}


@pytest.mark.parametrize("name,param", [(n, p) for n in VARIANTS.list() for p in VARIANT_PARAMS])
def test_sam_variant_hyperparameter_contract(name, param):
    v = VARIANTS.get(name)
    alt, bad = VARIANT_PARAMS[param]
    changes_or_declared("SAM variant", name, param, lambda: _eps(name), lambda: _eps(name, **{param: alt(v)}))
    if (param == "eta" and v.uses_eta) or (param == "normalize_bias" and v.bias_option):
        for b in bad:
            with pytest.raises(ValueError, match=param):
                _eps(name, **{param: b})
    assert all(torch.isfinite(e).all() for e in _eps(name))


def _selection_output(name, **hp):
    from repro.sam.selection import get

    return _eps("sam", params=get(name, **{**FIT_KW.get(("selection", name), {}), **hp}))


@pytest.mark.parametrize("name,param", [(n, p) for n in SELECTIONS.list() for p in hyperparams(SELECTIONS, n)])
def test_sam_selection_hyperparameter_contract(name, param):
    default = {**hyperparams(SELECTIONS, name), **FIT_KW.get(("selection", name), {})}[param]
    alt = alternative("selection", name, param, default)
    changes_or_declared("selection", name, param, lambda: _selection_output(name),
                        lambda: _selection_output(name, **{param: alt}))
    check_bad_values("selection", name, param, default, lambda v: _selection_output(name, **{param: v}))


# ----------------------------------------------------------------------------- sharpness definitions
class _TinyBN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


SHARP_DEFAULTS = dict(m=8, steps=3, n_samples=3, logit_norm=None, seed=0, mode="faithful", init=None)
SHARP_ALT = dict(m=4, steps=6, n_samples=5, logit_norm="l2", seed=1, mode="code_compat", init="zero")
SHARP_BAD = dict(m=[0, -1], steps=[0, -1], n_samples=[0], logit_norm=["__bad__"], mode=["__bad__"], init=["__bad__"])


def _sharp(definition, **kw):
    from repro.sharpness import measure_detailed

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
    args = {**SHARP_DEFAULTS, **kw}
    return measure_detailed(_TinyBN(), [(x, y)], definition, 0.05, device="cpu", **args).per_batch


@pytest.mark.parametrize("name,param", [(n, p) for n in DEFINITIONS.list() for p in SHARP_DEFAULTS])
def test_sharpness_definition_parameter_contract(name, param):
    """A measure() setting a definition does not read is declared inert by ``cache_params`` (None);
    it must then leave the value unchanged. Every other setting must change it."""
    from repro.sharpness.measure import cache_params

    declared = cache_params(name, 0.05, **{**SHARP_DEFAULTS, param: SHARP_ALT[param]}, device="cpu")
    a, b = _sharp(name), _sharp(name, **{param: SHARP_ALT[param]})
    assert all(math.isfinite(v) for v in a)
    if param in declared and declared[param] is None:
        assert _same(a, b), f"{name}: {param} is declared inert (cache_params -> None) but changes the value"
    else:
        assert not _same(a, b), f"{name}: measure setting {param!r} changes nothing"
    for bad in SHARP_BAD.get(param, []):
        if declared.get(param, 0) is None:
            continue
        with pytest.raises(ValueError, match=param):
            _sharp(name, **{param: bad})


# ----------------------------------------------------------------------------- the contract catches a new method
def test_contract_catches_an_inert_hyperparameter_of_a_new_detector(det_data):
    from repro.ood.detectors.base import Detector

    @DETECTORS.register("_contract_probe")
    class Probe(Detector):
        uses_logits = True
        uses_features = False

        def __init__(self, unused: float = 1.0):
            self.unused = unused

        def needs_training_features(self):
            return False

        def _score(self, features, logits):
            return logits.max(axis=1)

    try:
        assert "_contract_probe" in DETECTORS.list()
        with pytest.raises(AssertionError, match="changes nothing"):
            test_detector_hyperparameter_contract("_contract_probe", "unused", det_data)
    finally:
        DETECTORS._entries.pop("_contract_probe")
