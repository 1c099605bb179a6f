"""Chapter 3: NINCO, OOD unit tests, contamination of the popular OOD sets (the shared OOD zoo lives in :mod:`.zoo`)."""
