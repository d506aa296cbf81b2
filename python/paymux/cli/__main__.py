"""`python -m paymux.cli`: the same entry point as the `paymux` command."""

import sys

from paymux.cli.main import main

sys.exit(main())
