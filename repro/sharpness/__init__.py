"""Sharpness vs generalization (chapter 5 / paper Sec. 8.3, Andriushchenko et al. 2023).

- :func:`measure` / :func:`measure_detailed`: any of the 12 definitions (App. H.4) on any model;
- :mod:`.definitions`: the registry (``get``, ``register``, ``list_definitions``);
- :mod:`.apgd`: Auto-PGD in weight space (Algorithm 1, ``faithful`` and ``code_compat``);
- :mod:`.kendall`: Kendall τ-a (Eq. 4), global and per subgroup;
- :mod:`.dln`: diagonal linear networks (Sec. 5.2); :mod:`.theory`: Hessians, invariance, Fig. 1.
"""
from repro.sharpness.definitions import MAIN_DEFINITION, Definition, get, list_definitions, register
from repro.sharpness.functional import FlatModel, logit_normalize
from repro.sharpness.measure import SharpnessResult, measure, measure_detailed

__all__ = ["measure", "measure_detailed", "SharpnessResult", "get", "register", "list_definitions",
           "Definition", "MAIN_DEFINITION", "FlatModel", "logit_normalize"]
