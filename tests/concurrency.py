"""Run one callable in many threads at once, each with its own DB connection."""
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_in_parallel(target: Callable[[int], Any], count: int) -> list[tuple[str, Any]]:
    """Start `count` threads together; return ("ok", result) or ("error", exc) for each."""
    barrier = threading.Barrier(count)
    results: list[tuple[str, Any]] = [("missing", None)] * count

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = ("ok", target(index))
        except Exception as exc:  # collected and asserted on by the test
            results[index] = ("error", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
