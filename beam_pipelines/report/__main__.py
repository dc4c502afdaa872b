"""``python -m beam_pipelines.report DIR [--output PATH]``."""

import logging
import sys

from beam_pipelines.report import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
