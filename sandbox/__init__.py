"""The sandbox payment gateway: a small Django project run as its own process.

It speaks the providers' real wire protocols (Alipay OpenAPI v2 with RSA2,
WeChat Pay API v3; UnionPay is meant to join as a sibling package) with its
own keys, so the shop is tested end to end over real HTTP with real
signatures and no internet. `python -m sandbox serve` runs it; README.md
describes the key layout, the identities and the control API.

The provider-neutral core (trades, refunds, notification dispatch with
retries, fault rules, runtime settings, keys) lives in this package's
top-level modules; each provider has its own subpackage (`sandbox.alipay`,
`sandbox.wechatpay`).
Nothing here imports the shop's apps: a mistake shared by the shop's adapter
and the sandbox would hide.
"""
