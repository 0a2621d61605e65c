"""Fault injection for child processes of the fault tests; on PYTHONPATH only when a test asks for it.

FASHION_FAULTS_SLOW_CHECKPOINT_FSYNC=SECONDS: before a checkpoint temp file (checkpoints/.step-*.tmp) is
fsynced, sleep that long. The process then sits, mid-write, between writing the temp file and renaming it
over step-*.pt, so a test can SIGKILL it there every time instead of by luck. Nothing else changes.
"""

import os

_delay = float(os.environ.get("FASHION_FAULTS_SLOW_CHECKPOINT_FSYNC") or 0)
if _delay > 0:
    import time

    _real_fsync = os.fsync

    def _slow_checkpoint_fsync(fd):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if os.path.basename(name).startswith(".step-") and name.endswith(".tmp"):
            time.sleep(_delay)
        return _real_fsync(fd)

    os.fsync = _slow_checkpoint_fsync
