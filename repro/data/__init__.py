"""Data sources: generated worlds (default, offline) and external assets via manifests (``full``).

- :mod:`repro.data.world`: the procedurally generated 32x32 image world (ID, OOD, contamination).
- :mod:`repro.data.unit_tests`: the 17 synthetic OOD unit tests.
- :mod:`repro.data.facts`: the generated lesser-known-facts corpus for unlearning.
- :mod:`repro.data.manifests`: YAML manifests of external datasets (hash-verified via pooch).
"""
