"""Entry point kept for ``torchrun -m repro.train_ddp``: see :mod:`repro.studies.ch6_samon.ddp`."""
from repro.studies.ch6_samon.ddp import main

if __name__ == "__main__":
    raise SystemExit(main())
