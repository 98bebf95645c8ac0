"""Tasks the outbox tests deliver (registered with the shop's Celery app)."""
from celery import shared_task

RUNS: list[tuple[str, int]] = []


@shared_task
def record_task(value: int) -> int:
    RUNS.append(("record", value))
    return value


@shared_task
def failing_task(value: int) -> int:
    RUNS.append(("failing", value))
    raise RuntimeError(f"failing {value}")
