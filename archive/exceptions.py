"""Errors of the archive app (the convention is shop.exceptions.ShopError).

    ArchiveError
    └── ArchiveDayExists   the day is archived already (an archive is never rewritten)
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from shop.exceptions import ShopError


class ArchiveError(ShopError):
    user_message = _("The archive could not be written.")


class ArchiveDayExists(ArchiveError):
    pass
