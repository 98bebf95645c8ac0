"""The nightly archive of payment records, and the check of its chain.

For each Beijing day, the raw gateway notifications received that day and
the payment and refund events written that day are exported (JSON Lines,
one object per row in primary-key order, gzip-compressed with no timestamp
so the same rows always give the same bytes) to the archive storage
(STORAGES["archive"]: a directory by default, any Django storage such as
django-storages' S3 by configuration), under `YYYY/MM/DD/`. Beside them a
`manifest.json` lists each file's SHA-256 (of the stored, compressed bytes
and of the content) and row count, and the SHA-256 of the previous day's
manifest: the days form a chain, so a deleted, replaced or edited day
breaks it at that day. An archived day is never written again.

`archive_verify` walks the chain: every manifest present and contiguous,
each linked to the one before, every file's hash as recorded; with
`database=True` it also exports each day again from the database and
compares, naming a day whose rows were edited or deleted since.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db.models import Min, QuerySet
from django.utils import timezone

from archive.exceptions import ArchiveDayExists
from payments.models import GatewayNotification, PaymentEvent
from refunds.models import RefundEvent

logger = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
MANIFEST = "manifest.json"
FORMAT = "shop-archive/1"


@dataclass(frozen=True)
class Source:
    """One kind of record archived per day."""

    name: str
    queryset: QuerySet[Any]
    stamp: str  # the datetime field that puts a row in a day


def sources() -> tuple[Source, ...]:
    return (
        Source("notifications", GatewayNotification.objects.all(), "received_at"),
        Source("payment_events", PaymentEvent.objects.all(), "created_at"),
        Source("refund_events", RefundEvent.objects.all(), "created_at"),
    )


def archive_storage() -> Storage:
    return storages["archive"]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def _rows(source: Source, day: date) -> Iterator[dict[str, Any]]:
    start, end = day_bounds(day)
    # One query per kind, streamed: never a query per row.
    rows = source.queryset.filter(**{f"{source.stamp}__gte": start, f"{source.stamp}__lt": end}).order_by("pk")
    yield from rows.values().iterator(chunk_size=2000)


def _jsonable(value: Any) -> Any:
    if isinstance(value, memoryview | bytes | bytearray):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def export_day(source: Source, day: date) -> tuple[bytes, int]:
    """The day's rows of one kind as JSON Lines (uncompressed) and how many."""
    buffer = io.BytesIO()
    count = 0
    for row in _rows(source, day):
        line = json.dumps({key: _jsonable(value) for key, value in row.items()}, sort_keys=True,
                          ensure_ascii=False, separators=(",", ":"))
        buffer.write(line.encode() + b"\n")
        count += 1
    return buffer.getvalue(), count


def _gzip(content: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed:
        compressed.write(content)
    return out.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def day_path(day: date, name: str) -> str:
    return f"{day:%Y/%m/%d}/{name}"


def _manifest_bytes(storage: Storage, day: date) -> bytes | None:
    path = day_path(day, MANIFEST)
    if not storage.exists(path):
        return None
    with storage.open(path, "rb") as stored:
        return stored.read()


def archived_days(storage: Storage | None = None) -> list[date]:
    """Every day with a manifest, in order."""
    storage = storage or archive_storage()
    days = []
    for year in _dirs(storage, ""):
        for month in _dirs(storage, year):
            for day in _dirs(storage, f"{year}/{month}"):
                try:
                    found = date(int(year), int(month), int(day))
                except ValueError:
                    continue
                if storage.exists(day_path(found, MANIFEST)):
                    days.append(found)
    return sorted(days)


def _dirs(storage: Storage, path: str) -> list[str]:
    try:
        directories, _files = storage.listdir(path)
    except FileNotFoundError:
        return []
    return sorted(directories)


def archive_day(*, day: date, storage: Storage | None = None) -> dict[str, Any]:
    """Archive one day and chain it to the last archived day; returns its manifest.

    Raises ArchiveDayExists for a day archived already (never rewritten).
    """
    storage = storage or archive_storage()
    if storage.exists(day_path(day, MANIFEST)):
        raise ArchiveDayExists(f"{day} is archived already")
    earlier = [found for found in archived_days(storage) if found < day]
    previous_day = earlier[-1] if earlier else None
    previous = _manifest_bytes(storage, previous_day) if previous_day else None
    files = {}
    for source in sources():
        content, count = export_day(source, day)
        stored = _gzip(content)
        name = f"{source.name}.jsonl.gz"
        storage.save(day_path(day, name), ContentFile(stored))
        files[name] = {"rows": count, "sha256": _sha256(stored), "content_sha256": _sha256(content)}
    manifest = {
        "format": FORMAT,
        "day": day.isoformat(),
        "created_at": timezone.now().isoformat(),
        "files": files,
        "previous_day": previous_day.isoformat() if previous_day else None,
        "previous_manifest_sha256": _sha256(previous) if previous is not None else None,
    }
    # Written last: a day without its manifest is not archived, and is redone.
    storage.save(day_path(day, MANIFEST), ContentFile(json.dumps(manifest, indent=2, sort_keys=True).encode()))
    logger.info("archive: %s written (%s)", day, ", ".join(f"{name} {f['rows']}" for name, f in files.items()))
    return manifest


def archive_days_due(*, today: date | None = None, storage: Storage | None = None, limit: int = 31) -> list[date]:
    """The nightly job: archive every finished day not archived yet, in order.

    Starts after the last archived day (or at the first day with records),
    ends with yesterday (Beijing); a missed night is caught up, oldest first,
    so the chain stays contiguous.
    """
    storage = storage or archive_storage()
    today = today or timezone.now().astimezone(BEIJING).date()
    done = archived_days(storage)
    if done:
        first = done[-1] + timedelta(days=1)
    else:
        earliest = [stamp for source in sources() if (stamp := source.queryset.aggregate(
            first=Min(source.stamp))["first"]) is not None]
        if not earliest:
            return []
        first = min(earliest).astimezone(BEIJING).date()
    written: list[date] = []
    day = first
    while day < today and len(written) < limit:
        archive_day(day=day, storage=storage)
        written.append(day)
        day += timedelta(days=1)
    return written


@dataclass(frozen=True)
class Problem:
    day: date
    detail: str

    def __str__(self) -> str:
        return f"{self.day}: {self.detail}"


def archive_verify(*, storage: Storage | None = None, database: bool = False) -> list[Problem]:
    """Every break in the archive's chain, by day (an empty list: intact)."""
    storage = storage or archive_storage()
    problems: list[Problem] = []
    days = archived_days(storage)
    previous_day: date | None = None
    previous_bytes: bytes | None = None
    for day in days:
        raw = _manifest_bytes(storage, day) or b""
        try:
            manifest = json.loads(raw)
        except ValueError:
            problems.append(Problem(day, "the manifest is not readable"))
            previous_day, previous_bytes = day, raw
            continue
        problems += _chain_problems(day, manifest, previous_day, previous_bytes)
        problems += _file_problems(storage, day, manifest)
        if database:
            problems += _database_problems(day, manifest)
        previous_day, previous_bytes = day, raw
    return problems


def _chain_problems(day: date, manifest: dict[str, Any], previous_day: date | None,
                    previous_bytes: bytes | None) -> Iterable[Problem]:
    if manifest.get("day") != day.isoformat():
        yield Problem(day, f"the manifest names the day {manifest.get('day')}")
    expected_previous = previous_day.isoformat() if previous_day else None
    if previous_day and day - previous_day > timedelta(days=1):
        yield Problem(day, f"the days after {previous_day} are missing")
    if manifest.get("previous_day") != expected_previous:
        yield Problem(day, f"chained to {manifest.get('previous_day')}, but the day before in the archive is "
                           f"{expected_previous}: a day was removed")
    elif previous_bytes is not None and manifest.get("previous_manifest_sha256") != _sha256(previous_bytes):
        yield Problem(day, f"the manifest of {previous_day} is not the one this day was chained to: it was changed")


def _file_problems(storage: Storage, day: date, manifest: dict[str, Any]) -> Iterable[Problem]:
    for name, recorded in sorted((manifest.get("files") or {}).items()):
        path = day_path(day, name)
        if not storage.exists(path):
            yield Problem(day, f"{name} is missing")
            continue
        with storage.open(path, "rb") as stored:
            data = stored.read()
        if _sha256(data) != recorded.get("sha256"):
            yield Problem(day, f"{name} does not match its SHA-256 in the manifest: it was changed")


def _database_problems(day: date, manifest: dict[str, Any]) -> Iterable[Problem]:
    files = manifest.get("files") or {}
    for source in sources():
        recorded = files.get(f"{source.name}.jsonl.gz")
        if recorded is None:
            continue
        content, count = export_day(source, day)
        if _sha256(content) != recorded.get("content_sha256"):
            yield Problem(day, f"the database's {source.name} ({count} rows) differ from the archive "
                               f"({recorded.get('rows')} rows): edited or deleted since")
