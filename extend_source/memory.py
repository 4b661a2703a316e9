"""Keeping a long sync's memory and garbage-collector costs flat.

A sync pages through every run in the process that then loads them, so what
extracting leaves behind (collector work, Arrow's cached buffers) is paid for
again by the load.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Exclude the objects that exist now from garbage collection until the block ends.

    Decoding a page makes thousands of short-lived dicts, and each full collection
    they trigger would also walk every object dlt, pyarrow and DuckDB keep for the
    life of the process; frozen, those are skipped (about a tenth of a sync's time).
    A program that froze objects itself is left to manage them.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_arrow_memory() -> None:
    """Hand the memory Arrow cached for reuse back to the system, before the load needs it."""
    pa.default_memory_pool().release_unused()
