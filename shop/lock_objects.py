"""Row locks on catalogue rows, always taken in primary-key order."""
from collections.abc import Iterable

from django.db.models import QuerySet

from shop.models import Sku


def skus_for_update(*, codes: Iterable[str]) -> QuerySet[Sku]:
    return (
        Sku.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(code__in=list(codes))
        .order_by("pk")
    )
