"""``python -m condfip.cli ...``: the ``condfip`` command."""

import sys

from condfip.cli import main

sys.exit(main())
