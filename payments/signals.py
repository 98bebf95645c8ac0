"""What the payments app tells the apps built on it."""
from django.dispatch import Signal

# Sent after the commit that flagged a succeeded payment as needing a refund
# (a duplicate payment, or one after its order closed), with `payment_id`.
# The refunds app answers by refunding it; payments does not know refunds.
payment_needs_refund = Signal()
