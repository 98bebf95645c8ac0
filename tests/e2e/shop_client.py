"""A shopper without a browser: a requests session against the live shop.

It submits the shop's forms the way a browser would (CSRF token included) and
reads pages with lxml. Sandbox pages are driven with tests/sandbox/shopper.py
on the same session, so cookies carry across the redirects between them.
"""
from __future__ import annotations

from urllib.parse import urljoin

import lxml.html
import requests

from orders.models import Order
from tests.polling import wait_for
from tests.sandbox.shopper import Shopper as SandboxShopper


class ShopClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.sandbox = SandboxShopper()
        self.sandbox.http = self.http

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url(path), timeout=20, **kwargs)

    def csrf_token(self) -> str:
        return self.http.cookies.get("csrftoken") or ""

    def post(self, path: str, data: dict, **kwargs) -> requests.Response:
        if not self.csrf_token():
            self.get("/accounts/login/")
        return self.http.post(
            self.url(path), data={**data, "csrfmiddlewaretoken": self.csrf_token()}, timeout=20, **kwargs
        )

    def sign_in(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        response = self.post("/accounts/login/", {"username": username, "password": password})
        assert f"Sign out {username}" in response.text, response.text[:500]

    def place_order(self, items: dict[str, int]) -> Order:
        for sku, quantity in items.items():
            self.post("/cart/add/", {"sku": sku, "quantity": quantity})
        checkout = self.get("/checkout/")
        token = lxml.html.fromstring(checkout.text).xpath("//input[@name='checkout_token']/@value")[0]
        response = self.post(
            "/checkout/",
            {
                "consignee_name": "Li Lei",
                "consignee_phone": "13800138000",
                "address_province": "Shanghai",
                "address_city": "Shanghai",
                "address_district": "Huangpu",
                "address_street": "1 Nanjing Road East",
                "checkout_token": token,
            },
        )
        assert response.url.endswith("/pay/"), response.text[:500]
        order_no = response.url.rstrip("/").split("/")[-2]
        return Order.objects.get(order_no=order_no)

    def choose(self, order: Order, choice: str, device: str = "desktop") -> requests.Response:
        """Submit the cashier form; redirects inside the shop are followed."""
        return self.post(f"/orders/{order.order_no}/pay/", {"choice": choice, "device": device})

    def submit_gateway_form(self, page: requests.Response) -> requests.Response:
        """What the auto-submitting redirect page does in a browser."""
        form = lxml.html.fromstring(page.text).get_element_by_id("gateway-form")
        fields = {field.name: field.value for field in form.inputs if field.name}
        return self.http.post(form.action, data=fields, timeout=20, allow_redirects=False)

    def qr_content(self, page: requests.Response) -> str:
        return lxml.html.fromstring(page.text).xpath("//*[@data-testid='qr-code']/@data-qr-content")[0]

    def result_of(self, response: requests.Response) -> str:
        found = lxml.html.fromstring(response.text).xpath("//*[@data-testid='payment-result']/@data-result")
        return found[0] if found else ""

    def wait_until_done(self, out_trade_no: str, timeout: float = 15) -> dict:
        """Poll the QR page's status endpoint, as its script does."""
        def done():
            data = self.get(f"/payments/{out_trade_no}/status/").json()
            return data if data["done"] else None

        return wait_for(done, timeout=timeout, interval=0.05, what=f"{out_trade_no} to be done")

    # -- helpers for gateways that redirect with a plain GET (WeChat Pay H5) ----

    def choose_unfollowed(self, order: Order, choice: str, device: str = "desktop") -> requests.Response:
        """Submit the cashier form and return its answer without following redirects."""
        return self.post(
            f"/orders/{order.order_no}/pay/", {"choice": choice, "device": device}, allow_redirects=False
        )

    def field_errors(self, response: requests.Response, field: str) -> list[str]:
        """The error messages the shop's form shows under `field`."""
        page = lxml.html.fromstring(response.text)
        return [" ".join(p.text_content().split()) for p in page.xpath(f"//*[@data-field='{field}']")]
