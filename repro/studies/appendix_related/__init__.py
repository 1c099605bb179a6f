"""Appendix: related OOD methods (l2-normalised training, Unleashing Mask, SeTAR) in the chapter 3-4 harness."""
