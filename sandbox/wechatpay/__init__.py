"""The sandbox's WeChat Pay API v3 provider (direct merchant, public-key mode).

Follows docs/gateways-wechatpay.md: `api.py` verifies every `/wechatpay/v3/...`
request (§3) and signs every 2xx answer (§4); `transactions.py` serves
Native and H5 prepay, the order queries and close (§6.1-§6.4),
`refunds.py` refund create and query (§6.5-§6.7), `bills.py` the trade bill
and its download (§6.8, §6.9); `pages.py` the shopper's scan and H5 pages;
`notifications.py` the encrypted, signed notifications (§5) and their
forgeries; `resources.py` the §5.3/§5.4/§6.6 objects; `errors.py` the §8
error answers. `signing.py` and `formats.py` need no Django, so tests may
import them to cross-check. Nothing here imports the shop's adapter.
"""
