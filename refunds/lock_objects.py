"""Row locks for refunds. Lock order: the order, the payment's refund balance,
then the refund (the same order payments uses: an order before its children).
Each lock names its table (`of=`), so joined rows are read, never locked."""
from orders.lock_objects import order_for_update
from orders.models import Order
from payments.models import Payment
from refunds.models import Refund, RefundBalance


def balance_for_update(*, payment: Payment) -> RefundBalance:
    locked = RefundBalance.objects.select_for_update(of=("self",)).filter(payment=payment).first()
    if locked is not None:
        return locked
    # The payment's first refund: the balance is made (a concurrent first
    # refund may make it first), then locked.
    RefundBalance.objects.get_or_create(payment=payment, defaults={"paid_minor": payment.amount_minor})
    return RefundBalance.objects.select_for_update(of=("self",)).get(payment=payment)


def refund_for_update(*, refund_id: int) -> tuple[Refund, RefundBalance, Order]:
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    order = order_for_update(order_id=refund.order_id)
    balance = balance_for_update(payment=refund.payment)
    refund = Refund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund_id)
    return refund, balance, order
