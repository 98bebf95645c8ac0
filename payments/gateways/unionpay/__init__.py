"""UnionPay online gateway payment, ACP 5.1.0 (signMethod 01): the adapter and its parts.

`gateway.py` is the adapter, `client.py` the signed back-channel calls and
answer verification, `signing.py` the PKCS#12 signing certificate, the
signatures and UnionPay's certificate chain, `formats.py` fields, fen,
Beijing times and the raw answer body, `statements.py` the settlement file.
The protocol is docs/gateways-alipay-unionpay.md Part B.
"""
from payments.gateways.unionpay.gateway import UnionPayGateway

__all__ = ["UnionPayGateway"]
