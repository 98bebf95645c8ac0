"""Row locks for reconciliation. A statement is locked before its discrepancies;
neither is ever held while a payment or refund service runs (those take the
order, payment, balance and refund locks of their own, after our commit)."""
from reconciliation.models import Discrepancy, Statement


def statement_for_update(*, statement_id: int) -> Statement:
    return Statement.objects.select_for_update(of=("self",)).get(pk=statement_id)


def discrepancy_for_update(*, discrepancy_id: int) -> Discrepancy:
    return Discrepancy.objects.select_for_update(of=("self",)).get(pk=discrepancy_id)
