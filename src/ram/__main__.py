"""`python -m ram` and `torchrun -m ram train ...`."""

import sys

from .cli import main

sys.exit(main())
