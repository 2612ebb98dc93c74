"""``python -m zoo.train``: the training entry point (also under ``torchrun``)."""

import sys

from zoo.train.trainer import main

sys.exit(main())
