"""``python -m radcase_pacs`` is the ``radcase-pacs`` command."""

import sys

from radcase_pacs.cli import main

sys.exit(main())
