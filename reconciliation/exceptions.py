"""Errors of the reconciliation app (the convention is shop.exceptions.ShopError).

    ReconciliationError
    ├── ReconciliationNotAllowed      the user may not see or decide reconciliation
    ├── NoteRequired                  resolving a discrepancy without saying how
    ├── SignOffRefused                the day is not finished, or has open discrepancies
    ├── DayNotOver                    the bill for that day cannot exist yet
    ├── NoStatementsForGateway        the gateway is unknown, not configured, or has no bills
    ├── InvalidStatementTransition    a statement move STATEMENT_TRANSITIONS forbids
    └── InvalidDiscrepancyTransition  a discrepancy move DISCREPANCY_TRANSITIONS forbids
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from shop.exceptions import InvalidTransition, ShopError


class ReconciliationError(ShopError):
    """Root of the reconciliation app's errors."""

    user_message = _("The reconciliation could not be changed.")


class ReconciliationNotAllowed(ReconciliationError):
    user_message = _("Only finance may do this.")


class NoteRequired(ReconciliationError):
    user_message = _("Say how the discrepancy was resolved.")


class SignOffRefused(ReconciliationError):
    user_message = _("This day cannot be signed off while discrepancies are open.")
    not_finished = _("This day is not reconciled yet.")


class DayNotOver(ReconciliationError):
    user_message = _("The bill for this day is not out yet.")


class NoStatementsForGateway(ReconciliationError):
    user_message = _("This gateway has no bills to reconcile.")


class InvalidStatementTransition(InvalidTransition, ReconciliationError):
    pass


class InvalidDiscrepancyTransition(InvalidTransition, ReconciliationError):
    pass
