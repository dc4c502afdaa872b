"""Choose the Keras backend before anything imports Keras.

``import tensorflow`` imports Keras (and Keras imports JAX when it is
installed), so ``--backend`` and, under JAX, ``--cpu_replicas`` must reach
the environment before the trainer's first import: :func:`preselect` reads
them from the command line and sets ``KERAS_BACKEND`` and ``XLA_FLAGS``. The
trainers call it first thing when run as programs.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

__all__ = ["preselect"]


def _flag(argv: List[str], name: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def preselect(argv: Optional[List[str]] = None) -> None:
    """Set ``KERAS_BACKEND`` (and, for ``--backend jax --cpu_replicas K``, K host devices
    in ``XLA_FLAGS``) from ``argv`` unless Keras is already imported."""
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = _flag(argv, "--backend")
    if backend is None or "keras" in sys.modules:
        return
    os.environ["KERAS_BACKEND"] = backend
    replicas = _flag(argv, "--cpu_replicas")
    if backend == "jax" and replicas and replicas.isdigit() and int(replicas) > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        flags = f"{flags} --xla_force_host_platform_device_count={replicas}"
        if "collective_call_terminate_timeout" not in flags:
            # CPU "devices" are threads sharing the cores: on a busy machine one can reach an
            # all-reduce more than XLA's default 40 s after the other, and XLA then aborts
            # the process ("Termination timeout ... exceeded"); wait longer instead
            flags += " --xla_cpu_collective_call_terminate_timeout_seconds=600"
        os.environ["XLA_FLAGS"] = flags.strip()
