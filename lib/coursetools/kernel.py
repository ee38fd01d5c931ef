"""The kernel the grader starts: ipykernel with a memory cap and a lifeline.

Used as ``python -m coursetools.kernel -f {connection_file}`` from the kernelspec
that a grading worker writes (see ``worker.write_kernelspec``). Before ipykernel
starts it

- caps the address space (``RLIMIT_AS``) at ``COURSETOOLS_KERNEL_MEMORY_MB``, so a
  runaway allocation raises ``MemoryError`` in the student's cell instead of
  taking the machine down;
- records its process id in ``COURSETOOLS_KERNEL_PIDS`` so the grader can kill it
  if its worker has to be stopped;
- exits when its worker goes away (jupyter_client starts kernels in their own
  session, so they would otherwise outlive a killed worker).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path


def cap_memory(megabytes: int) -> None:
    if megabytes > 0:
        limit = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def watch_parent(interval: float = 2.0) -> None:
    """Exit as soon as the process that started us has gone."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="coursetools-lifeline", daemon=True).start()


def main() -> None:
    cap_memory(int(os.environ.get("COURSETOOLS_KERNEL_MEMORY_MB", "0") or 0))
    pid_dir = os.environ.get("COURSETOOLS_KERNEL_PIDS")
    if pid_dir:
        Path(pid_dir).mkdir(parents=True, exist_ok=True)
        (Path(pid_dir) / str(os.getpid())).touch()
    watch_parent()
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
