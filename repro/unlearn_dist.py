"""Entry point kept for ``torchrun -m repro.unlearn_dist``: see :mod:`repro.studies.ch7_jensun.distributed`."""
from repro.studies.ch7_jensun.distributed import main

if __name__ == "__main__":
    raise SystemExit(main())
