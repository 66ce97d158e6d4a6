"""OpenMP settings for the command line, applied before torch loads (this module imports no torch).

torch's CPU kernels run on an OpenMP thread pool, one thread per core by default. GNU OpenMP's
default wait policy lets an idle worker spin for a while before it sleeps, which is the fastest
choice on a machine with nothing else to do and a disastrous one on a shared one: on 2 cores with
other jobs running, a worker spinning in a barrier holds a core its partner needs, and every
parallel region waits for a thread that is not running. Measured on the 2-core machine under load
(docs/performance.md): a supervised step of SmolLM2-135M took 93 s with the default policy and
21.5 s with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once); one thread took about the same as
two passive ones there. On the idle machine passive costs little (see the same page).

The policy is read once, when the OpenMP runtime loads with torch, so it can only be set before
the first ``import torch``: the ``llm2vec-lite`` command does it on start. A value already in the
environment always wins. Library users who import torch themselves set the variable in their
shell (``export OMP_WAIT_POLICY=PASSIVE``).
"""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_openmp"]


def prefer_passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless torch is loaded or the variable is set; True if set."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
