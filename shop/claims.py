"""Claiming a unique key with one INSERT: the row goes in unless the key is taken.

    claimed = row_insert_unless_taken(notification)   # False: a copy holds the key

One statement, `INSERT ... ON CONFLICT DO NOTHING RETURNING id`, instead of a
savepoint, an INSERT, an IntegrityError and a rollback to the savepoint. A
concurrent transaction that inserted the same key first makes this one wait
until it ends: when it commits, nothing is inserted here (False); when it
rolls back, this row goes in. That is exactly what a claim needs, and it is
what the database's unique index decides, never a check-then-insert.

The statement is built by Django's own insert compiler (field conversion,
`pre_save`, the backend's ON CONFLICT or INSERT OR IGNORE spelling), only the
RETURNING row is read here, since Django's public `bulk_create` does not
return the key of a row inserted with `ignore_conflicts`.
"""
from __future__ import annotations

from django.db import connections, router
from django.db.models import Model, sql
from django.db.models.constants import OnConflict


def row_insert_unless_taken(row: Model) -> bool:
    """INSERT `row` unless one of its unique constraints is already taken; True when inserted.

    On True the row has its primary key, as after `save()`, and the value
    of each field given as an expression; on False it is left unsaved.
    """
    model = type(row)
    meta = model._meta
    using = router.db_for_write(model, instance=row)
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    # A value the database computes (a subquery) is read back with the key.
    computed = [field for field in fields if hasattr(getattr(row, field.attname), "resolve_expression")]
    query = sql.InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [row])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk, *computed]
    [(statement, params)] = compiler.as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    row.pk = inserted[0]
    for field, value in zip(computed, inserted[1:], strict=True):
        setattr(row, field.attname, value)
    row._state.adding = False
    row._state.db = using
    return True
