"""The one convention every app's errors follow.

Each app has a root error in its own `exceptions.py` (`OrderError`,
`PaymentError`, `RefundError`, ...) that derives from `ShopError`.
`str(error)` is the detail for logs and staff (numbers, states, ids);
`user_message` is the translated sentence a person is shown. A class sets
its default `user_message`; a `raise` may pass a more precise one.
"""
from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class ShopError(Exception):
    user_message: str | Promise = _("That did not work; nothing was changed.")

    def __init__(self, detail: str = "", *, user_message: str | Promise | None = None) -> None:
        if user_message is not None:
            self.user_message = user_message
        super().__init__(detail or str(self.user_message))


class InvalidTransition(ShopError):
    """A status move that the entity's transition table does not allow.

    Each app raises its own subclass (InvalidOrderTransition, ...), so a
    caller catching one entity's refusal never swallows another's.
    """

    user_message = _("This cannot be done in the current state.")

    def __init__(self, reference: str, from_status: str, to_status: str) -> None:
        super().__init__(f"{reference}: {from_status} → {to_status} is not allowed")
        self.reference = reference
        self.from_status = from_status
        self.to_status = to_status
