"""Counting what one request costs the database: statements and transactions.

`RoundTrips` records every SQL statement Django sends on the default
connection (through `connection.execute_wrapper`) and every transaction
that ends: an outermost `atomic` block's COMMIT, and each statement run in
autocommit mode outside any block (PostgreSQL commits each of those on its
own). It needs a test with real transactions (`transaction=True`): inside
the test case's own atomic block nothing would ever commit. Statements
psycopg sends by itself are not seen: the BEGIN that opens a transaction,
and CONN_HEALTH_CHECKS' `SELECT 1` on a connection reused by a new request
(tests close connections after each request).
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.db import connection


@dataclass
class RoundTrips:
    statements: list[str] = field(default_factory=list)
    # One entry per commit: "COMMIT" for an atomic block, the statement
    # itself for a write autocommitted alone (a lone SELECT writes nothing).
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
        if connection.get_autocommit() and not connection.in_atomic_block and not sql.lstrip().upper().startswith(
                "SELECT"):
            self.transactions.append(sql)
        return execute(sql, params, many, context)

    def report(self) -> str:
        lines = [f"{len(self.statements)} statements, {self.commits} commits"]
        lines += [f"  {sql[:160]}" for sql in self.statements]
        lines += [f"  ends: {sql[:80]}" for sql in self.transactions]
        return "\n".join(lines)
