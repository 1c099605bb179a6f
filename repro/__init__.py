"""repro: a library that reproduces, from code, the dissertation
*Out-of-Distribution Detection, Sharpness, and Unlearning* (Müller, Tübingen 2025).

Subpackages follow the dissertation's chapters:

- :mod:`repro.ood` (chapters 3-4: NINCO, OOD unit tests, Mahalanobis++)
- :mod:`repro.sharpness` (chapter 5: sharpness vs generalization)
- :mod:`repro.sam` (chapter 6: SAM and SAM-ON)
- :mod:`repro.unlearning` (chapter 7: JensUn, worst-case evaluation, relearning)

and shared infrastructure: :mod:`repro.core.config` (profiles, devices, seeds),
:mod:`repro.core.cache` (content-addressed atomic cache), :mod:`repro.models` (timm-based zoo),
:mod:`repro.train.loop`, :mod:`repro.plots`, :mod:`repro.reference` (the printed numbers).
"""

__version__ = "0.1.0"
