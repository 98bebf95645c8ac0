"""Wait for a condition by polling it with a deadline (never a fixed sleep)."""
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.02, what: str = "") -> T:
    """Call `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up waiting for {what or predicate!r} after {timeout}s")
        time.sleep(interval)
