"""Flex Template entry point of the images pipeline (FLEX_TEMPLATE_PYTHON_PY_FILE).

The launcher calls this file with the template's parameters as command-line
options (``--input=gs://... --output_dir=gs://... --runner=DataflowRunner
...``); every parameter is validated before the pipeline is built, and a bad
one stops the launch with a one-line error naming it.
"""

import logging

from beam_pipelines import images

if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    images.run()
