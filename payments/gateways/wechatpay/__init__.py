"""WeChat Pay API v3 (direct merchant): the adapter and its protocol pieces.

`gateway.py` is the adapter, `client.py` the signed calls and their
verification, `signing.py` keys, signatures and AES-GCM resources,
`notifications.py` payment and refund notifications, `statements.py` the
trade bill, `formats.py` fen, yuan and RFC 3339 times. The protocol is
docs/gateways-wechatpay.md §1-9, 11, 12 (API v2, §10, is not supported).
"""
from payments.exceptions import (
    StatementFormatError,
    StatementIntegrityError,
    StatementTotalsMismatch,
)
from payments.gateways.wechatpay.gateway import WechatPayGateway

__all__ = ["StatementFormatError", "StatementIntegrityError", "StatementTotalsMismatch", "WechatPayGateway"]
