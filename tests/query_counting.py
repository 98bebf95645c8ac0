"""Counting what one request costs the database: statements and transactions.

`RoundTrips` records every SQL statement Django sends on the default
connection (through `connection.execute_wrapper`) and every transaction
that ends: an outermost `atomic` block's COMMIT, and each statement run in
autocommit mode outside any block (PostgreSQL commits each of those on its
own). It needs a test with real transactions (`transaction=True`): inside
the test case's own atomic block nothing would ever commit.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.db import connection


@dataclass
class RoundTrips:
    statements: list[str] = field(default_factory=list)
    # One entry per transaction that ended: "COMMIT" for an atomic block,
    # the statement itself for one autocommitted alone.
    transactions: list[str] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def commits(self) -> int:
        return len(self.transactions)

    def __enter__(self) -> RoundTrips:
        self._stack.enter_context(connection.execute_wrapper(self._statement))
        original_commit = connection.commit

        def counting_commit() -> None:
            self.transactions.append("COMMIT")
            original_commit()

        connection.commit = counting_commit  # type: ignore[method-assign]
        self._stack.callback(setattr, connection, "commit", original_commit)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        # The instance attribute shadowed the method; drop it.
        connection.__dict__.pop("commit", None)

    def _statement(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements.append(sql)
        if connection.get_autocommit() and not connection.in_atomic_block:
            self.transactions.append(sql)
        return execute(sql, params, many, context)

    def report(self) -> str:
        lines = [f"{len(self.statements)} statements, {self.commits} transactions"]
        lines += [f"  {sql[:160]}" for sql in self.statements]
        lines += [f"  ends: {sql[:80]}" for sql in self.transactions]
        return "\n".join(lines)
