"""Orders for tests are placed through the real service: setup that is a flow."""
import uuid

from orders.services import Consignee, order_place
from tests.shop.factories import SkuFactory, UserFactory

CONSIGNEE = Consignee(name="Li Lei", phone="13800138000", address="1 Nanjing Road, Shanghai")


def place_order(*, shopper=None, items=None, sku=None, quantity=1, **sku_kwargs):
    """Place a real order; by default one line of a fresh SKU."""
    shopper = shopper or UserFactory()
    if items is None:
        sku = sku or SkuFactory(**sku_kwargs)
        items = [(sku.code, quantity)]
    return order_place(
        shopper=shopper, items=items, consignee=CONSIGNEE, checkout_token=uuid.uuid4()
    )
