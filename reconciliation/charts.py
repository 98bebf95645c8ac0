"""The finance charts as SVG geometry the templates draw: no script, nothing from a CDN.

Points are computed here in whole pixels; the templates write them into
`<polyline>`, `<rect>` and `<text>` elements whose colours come from
classes in static/css/shop.css (no inline styles: a CSP is coming).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from shop.money import Money

WIDTH = 720
HEIGHT = 220
LEFT = 72  # room for the axis labels
RIGHT = 12
TOP = 12
BOTTOM = 28


@dataclass(frozen=True)
class Tick:
    y: int
    label: str


@dataclass(frozen=True)
class Series:
    name: str
    css: str
    points: str  # "x,y x,y ..." of the days that have a value
    dots: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    series: list[Series]
    ticks: list[Tick]
    dates: list[tuple[int, str]]
    zero_y: int
    empty: bool


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    title: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    dates: list[tuple[int, str]]
    baseline: int
    empty: bool


def _x(index: int, count: int) -> int:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (round(index * span / (count - 1)) if count > 1 else span // 2)


def _date_marks(days: list[date]) -> list[tuple[int, str]]:
    if not days:
        return []
    step = max(len(days) // 6, 1)
    return [(_x(index, len(days)), day.strftime("%m-%d")) for index, day in enumerate(days) if index % step == 0]


def net_chart(series: dict[str, list[tuple[date, int | None]]], *, currency: str = "CNY") -> LineChart:
    """Daily net per gateway (fen), one line each."""
    values = [value for points in series.values() for _day, value in points if value is not None]
    low, high = min([0, *values]), max([0, *values])
    if high == low:
        high = low + 100
    plot = HEIGHT - TOP - BOTTOM

    def y(value: int) -> int:
        return TOP + round((high - value) * plot / (high - low))

    drawn = []
    days: list[date] = []
    for number, (name, points) in enumerate(series.items()):
        days = [day for day, _value in points]
        coordinates = [(_x(index, len(points)), y(value), f"{day.isoformat()} {name} {Money(value, currency)}")
                       for index, (day, value) in enumerate(points) if value is not None]
        drawn.append(Series(name=name, css=f"series-{number % 6}",
                            points=" ".join(f"{x},{y_}" for x, y_, _title in coordinates), dots=coordinates))
    ticks = [Tick(y=y(value), label=Money(value, currency).format()) for value in _nice_steps(low, high)]
    return LineChart(width=WIDTH, height=HEIGHT, series=drawn, ticks=ticks, dates=_date_marks(days), zero_y=y(0),
                     empty=not values)


def count_chart(points: list[tuple[date, int]]) -> BarChart:
    """One bar per day: the discrepancies open at its end."""
    high = max([1, *(count for _day, count in points)])
    plot = HEIGHT - TOP - BOTTOM
    span = WIDTH - LEFT - RIGHT
    width = max(span // max(len(points), 1) - 1, 1)
    bars = []
    for index, (day, count) in enumerate(points):
        height = round(count * plot / high)
        x = LEFT + round(index * span / max(len(points), 1))
        bars.append(Bar(x=x, y=TOP + plot - height, width=width, height=height, title=f"{day.isoformat()}: {count}"))
    ticks = [Tick(y=TOP + plot - round(value * plot / high), label=str(value)) for value in sorted({0, high // 2, high})]
    return BarChart(width=WIDTH, height=HEIGHT, bars=bars, ticks=ticks,
                    dates=_date_marks([day for day, _count in points]), baseline=TOP + plot,
                    empty=not any(count for _day, count in points))


def _nice_steps(low: int, high: int) -> list[int]:
    """Three to five round values (whole yuan) spanning [low, high]."""
    span = high - low
    step = 100
    while span / step > 4:
        for factor in (2, 5 / 2, 2):
            step = int(step * factor)
            if span / step <= 4:
                break
    first = (low // step) * step
    return [value for value in range(first, high + step, step) if low <= value <= high] or [low, high]
