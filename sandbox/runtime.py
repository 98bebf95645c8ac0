"""Knobs that tests turn while the sandbox runs, and the sandbox's clock.

- `time_scale`: every provider delay (notification re-sends, bill URL
  lifetime) is multiplied by it; tests use e.g. 0.001.
- `clock_offset_seconds`: shifts the sandbox clock (`provider_now`), so a
  test can make trades "yesterday" and download their bill, or pass a
  time_expire. Request timestamps are still checked against the real clock,
  because the merchant's clock is not shifted.
- `timestamp_tolerance_seconds`: how far a request timestamp may be from
  the real clock (Alipay does not document its tolerance).
- `notify_schedules`: per provider, the delays between notification re-sends.
- `refund_processing_queries`: per provider, how many refund queries a new
  refund stays processing for (a `processing` fault rule overrides it);
  Alipay 0, WeChat Pay 1.
- `refund_settle_after_seconds`: per provider, the sandbox-clock seconds
  (times the time scale) after its creation at which a refund still
  processing ends SUCCESS by itself, as the control API's settle does (the
  money moves, the refund notification is queued), whatever queries it
  still waits for (a `processing` fault rule included); null: never.
  WeChat Pay starts with `--refund-settle-after` (default 10), Alipay null.
  The notification dispatcher thread does the settling.

Process-wide and in memory: one process serves every thread. Defaults come
from the settings (env / command line); POST /_control/settings changes them.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

DEFAULT_TIMESTAMP_TOLERANCE_SECONDS = 15 * 60


class RuntimeSettingInvalid(ValueError):
    pass


@dataclass(frozen=True)
class RuntimeSettings:
    time_scale: float
    clock_offset_seconds: float = 0.0
    timestamp_tolerance_seconds: float = DEFAULT_TIMESTAMP_TOLERANCE_SECONDS
    notify_schedules: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    refund_processing_queries: Mapping[str, int] = field(default_factory=dict)
    refund_settle_after_seconds: Mapping[str, float | None] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "time_scale": self.time_scale,
            "clock_offset_seconds": self.clock_offset_seconds,
            "timestamp_tolerance_seconds": self.timestamp_tolerance_seconds,
            "notify_schedules": {provider: list(delays) for provider, delays in self.notify_schedules.items()},
            "refund_processing_queries": dict(self.refund_processing_queries),
            "refund_settle_after_seconds": dict(self.refund_settle_after_seconds),
        }


_lock = threading.Lock()
_current: RuntimeSettings | None = None


def _defaults() -> RuntimeSettings:
    from sandbox.providers import provider_codes, provider_get

    return RuntimeSettings(
        time_scale=float(settings.SANDBOX_TIME_SCALE),
        notify_schedules={code: tuple(provider_get(code).notification_format.default_schedule) for code in provider_codes()},
        refund_processing_queries={
            code: provider_get(code).default_refund_processing_queries for code in provider_codes()
        },
        refund_settle_after_seconds={
            code: settings.SANDBOX_REFUND_SETTLE_AFTER if provider_get(code).refunds_settle_by_themselves else None
            for code in provider_codes()
        },
    )


def runtime_settings() -> RuntimeSettings:
    global _current
    with _lock:
        if _current is None:
            _current = _defaults()
        return _current


def _finite_number(name: str, value: object, *, minimum: float | None = None, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuntimeSettingInvalid(f"{name} must be a number")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        raise RuntimeSettingInvalid(f"{name} must be {'>' if exclusive else '>='} {minimum}")
    return float(value)


def _schedules(value: object, known: Mapping[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
    if not isinstance(value, dict):
        raise RuntimeSettingInvalid("notify_schedules must be an object: provider -> list of seconds")
    schedules = dict(known)
    for provider, delays in value.items():
        if provider not in known:
            raise RuntimeSettingInvalid(f"unknown provider in notify_schedules: {provider}")
        if not isinstance(delays, list):
            raise RuntimeSettingInvalid(f"notify_schedules.{provider} must be a list of seconds")
        schedules[provider] = tuple(
            _finite_number(f"notify_schedules.{provider}", delay, minimum=0) for delay in delays
        )
    return schedules


def _processing_queries(value: object, known: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise RuntimeSettingInvalid("refund_processing_queries must be an object: provider -> integer")
    counts = dict(known)
    for provider, count in value.items():
        if provider not in known:
            raise RuntimeSettingInvalid(f"unknown provider in refund_processing_queries: {provider}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise RuntimeSettingInvalid(f"refund_processing_queries.{provider} must be an integer >= 0")
        counts[provider] = count
    return counts


def _settle_after(value: object, known: Mapping[str, float | None]) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise RuntimeSettingInvalid("refund_settle_after_seconds must be an object: provider -> seconds or null")
    after = dict(known)
    for provider, seconds in value.items():
        if provider not in known:
            raise RuntimeSettingInvalid(f"unknown provider in refund_settle_after_seconds: {provider}")
        name = f"refund_settle_after_seconds.{provider}"
        if seconds is None:
            after[provider] = None
            continue
        try:
            after[provider] = _finite_number(name, seconds, minimum=0)
        except RuntimeSettingInvalid:
            raise RuntimeSettingInvalid(f"{name} must be a number >= 0 or null") from None
    return after


def runtime_update(changes: Mapping[str, object]) -> RuntimeSettings:
    """Apply the named changes (all or none); raises RuntimeSettingInvalid."""
    global _current
    current = runtime_settings()
    updated = current
    for name, value in changes.items():
        if name == "time_scale":
            updated = replace(updated, time_scale=_finite_number(name, value, minimum=0, exclusive=True))
        elif name == "clock_offset_seconds":
            updated = replace(updated, clock_offset_seconds=_finite_number(name, value))
        elif name == "timestamp_tolerance_seconds":
            updated = replace(updated, timestamp_tolerance_seconds=_finite_number(name, value, minimum=0))
        elif name == "notify_schedules":
            updated = replace(updated, notify_schedules=_schedules(value, current.notify_schedules))
        elif name == "refund_processing_queries":
            updated = replace(
                updated, refund_processing_queries=_processing_queries(value, current.refund_processing_queries)
            )
        elif name == "refund_settle_after_seconds":
            updated = replace(
                updated, refund_settle_after_seconds=_settle_after(value, current.refund_settle_after_seconds)
            )
        else:
            raise RuntimeSettingInvalid(f"unknown setting: {name}")
    with _lock:
        _current = updated
    return updated


def runtime_restore_defaults() -> RuntimeSettings:
    global _current
    with _lock:
        _current = _defaults()
        return _current


def refund_processing_queries(provider: str) -> int:
    return runtime_settings().refund_processing_queries.get(provider, 0)


def scaled(seconds: float) -> timedelta:
    """A provider delay, shrunk or stretched by the time scale."""
    return timedelta(seconds=seconds * runtime_settings().time_scale)


def provider_now() -> datetime:
    """Now on the sandbox clock: the real time plus the test-controlled offset."""
    return timezone.now() + timedelta(seconds=runtime_settings().clock_offset_seconds)
