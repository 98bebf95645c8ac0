"""The sandbox's Alipay OpenAPI v2 (RSA2) provider.

Follows docs/gateways-alipay-unionpay.md Part A: `gateway.py` serves
`/alipay/gateway.do` (A2-A7), `cashier.py` the shopper's pages and the
signed return (A9), `notifications.py` the asynchronous notifications (A8),
`bills.py` the bill files (A11). `signing.py` and `formats.py` need no
Django, so tests may import them to cross-check signatures.
"""
