"""What every task that talks to a gateway shares."""
from celery import Task
from celery.exceptions import Ignore
from django.conf import settings


class GatewayTask(Task):
    """Retries an unreachable gateway with backoff on a worker.

    In-process (no broker, `make run` without REDIS_URL) a retry cannot
    wait: Celery would run the task again at once, inside the request that
    enqueued it, up to max_retries times, each waiting out a gateway timeout.
    There the retry is left to the janitor, whose polling picks up refunds
    still processing and attempts still open. Tests set
    TASK_EAGER_RETRY_INLINE to see the Retry as a worker would.
    """

    abstract = True

    def retry(self, *args, **kwargs):
        if self.request.is_eager and not settings.TASK_EAGER_RETRY_INLINE:
            raise Ignore()
        return super().retry(*args, **kwargs)
