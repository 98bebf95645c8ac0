"""WeChat Pay API v2 (direct merchant, legacy credentials): the adapter and its protocol pieces.

`gateway.py` is the adapter; `xml.py` the envelope, read defensively;
`signing.py` the API key's `sign` and the refund notification's
`req_info`; `client.py` the signed calls and mutual TLS; `endpoints.py`
the calls read into the interface's values; `notifications.py` the
payment and refund notifications; `formats.py` fen and times. The
protocol is docs/gateways-wechatpay.md §10 (and §6.9 for the bill, which
the v3 package parses).
"""
from payments.gateways.wechatpay_v2.gateway import WechatPayV2Gateway

__all__ = ["WechatPayV2Gateway"]
