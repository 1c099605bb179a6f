"""Chapter 7 (Sec. 8.5): JensUn and baseline unlearning losses, worst-case (LKF-style) evaluation,
benign relearning. See :mod:`.losses`, :mod:`.trainer`, :mod:`.evaluation`, :mod:`.experiment`."""
from repro.unlearning.losses import get, list_losses, register  # noqa: F401
