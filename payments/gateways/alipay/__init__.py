"""Alipay OpenAPI v2 (RSA2): the adapter and its exact money and bill helpers.

`gateway.py` is the adapter, `client.py` the signed server calls,
`signing.py` keys and signatures, `formats.py` yuan and Beijing time,
`statements.py` the trade bill. The protocol is docs/gateways-alipay-unionpay.md
Part A.
"""
from payments.exceptions import StatementFormatError
from payments.gateways.alipay.formats import fen_to_yuan, yuan_to_fen
from payments.gateways.alipay.gateway import AlipayGateway

__all__ = ["AlipayGateway", "StatementFormatError", "fen_to_yuan", "yuan_to_fen"]
