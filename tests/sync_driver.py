"""Run extend-sync in a child process that halts at a chosen step, so a test can SIGKILL it.

    python sync_driver.py POINT MARKER [extend-sync flags...]

At POINT the child creates the file MARKER and sleeps; the test waits for the file,
then kills the child with SIGKILL, so no cleanup of any kind runs. The points sit
inside dlt's steps, where no public hook exists, hence the wrapped methods:

- `none`: no halt (the fake API can hold a page instead, to halt inside extract);
- `normalize`: the normalised files are written, the package not yet committed;
- `load`: the runs are in the staging table, the merge into parse_runs not yet run;
- `load-after-insert`: a first sync's append into parse_runs is committed, the job
  not yet marked done;
- `load-commit`: the merge is done, the load not yet recorded in `_dlt_loads`.
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlt.common.storages.load_storage import LoadStorage
from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.load.load import Load

from pipelines.cli import main

HALT_SECONDS = 600


def _always(*args: Any) -> bool:
    return True


def _loads_parse_runs(job: SqlLoadJob | DuckDbCopyJob) -> bool:
    return Path(job.file_name()).name.startswith("parse_runs.")


# point: (class, method, whether this call halts, halt after the method rather than before)
POINTS: dict[str, tuple[type, str, Callable[..., bool], bool]] = {
    "normalize": (LoadStorage, "commit_new_load_package", _always, False),
    "load": (SqlLoadJob, "run", _loads_parse_runs, False),
    "load-after-insert": (DuckDbCopyJob, "run", _loads_parse_runs, True),
    "load-commit": (Load, "complete_package", _always, False),
}


def halt_at(point: str, marker: Path) -> None:
    """Make the method named for `point` touch `marker` and sleep, before or after it runs."""
    owner, name, applies, after = POINTS[point]
    original = getattr(owner, name)

    def halted(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs) if after else None
        if applies(self):
            marker.touch()
            time.sleep(HALT_SECONDS)
        return result if after else original(self, *args, **kwargs)

    setattr(owner, name, halted)


if __name__ == "__main__":
    point, marker, *flags = sys.argv[1:]
    if point != "none":
        halt_at(point, Path(marker))
    sys.exit(main(flags))
