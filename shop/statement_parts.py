"""Parts of a hand-composed SQL statement that writes rows of several models at once.

A data-modifying WITH on PostgreSQL can store, move and record in one round
trip what the ORM sends as many statements (payments/services/
notification_statement.py). What it must not do is fall behind the models:
`insert_select` writes every concrete column of a model, each from the
caller's expression or from the field's own default, so a column added to
the model later is written here too, or the statement refuses to build.

    sql, defaults = insert_select(PaymentEvent, {"payment_id": "paid.id", "reason": "%(reason)s"},
                                  source="paid", connection=connection)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Model

# Defaults the model gives as a fresh empty value of a type, not a moment.
_EMPTY_DEFAULTS = (dict, list)


def insert_select(model: type[Model], values: Mapping[str, str], *, source: str,
                  connection: Any) -> tuple[str, dict[str, Any]]:
    """`INSERT INTO <table> (<every column>) SELECT <expressions> FROM <source>`, and its default parameters.

    `values` maps a field's attname to an SQL expression (a column of a
    CTE, or a `%(name)s` placeholder the caller fills). Every other column
    is written with its field's default, as a parameter returned here under
    `<table>__<attname>`. Each expression is cast to its column's type (an
    untyped parameter would otherwise be read as text). A field that
    stamps the time (`auto_now`, `auto_now_add`, a callable default) must be
    given a value, so that the statement never writes a moment taken when
    it was built.
    """
    meta = model._meta
    quote = connection.ops.quote_name
    columns: list[str] = []
    expressions: list[str] = []
    defaults: dict[str, Any] = {}
    for field in meta.local_concrete_fields:
        if field is meta.auto_field:
            continue
        columns.append(quote(field.column))
        cast = field.cast_db_type(connection)
        if field.attname in values:
            expressions.append(f"({values[field.attname]})::{cast}")
            continue
        stamps_time = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        moment_default = field.has_default() and callable(field.default) and field.default not in _EMPTY_DEFAULTS
        if stamps_time or moment_default:
            raise ValueError(f"{meta.label}.{field.name} needs a value: its default is taken when a row is written")
        name = f"{meta.db_table}__{field.attname}"
        defaults[name] = field.get_db_prep_save(field.get_default(), connection)
        expressions.append(f"%({name})s::{cast}")
    statement = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "
                 f"SELECT {', '.join(expressions)} FROM {source}")
    return statement, defaults
