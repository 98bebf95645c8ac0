"""API v2's URLs under /wechatpay/ (`WECHATPAY_V2_API_BASE=<sandbox https>/wechatpay`):
`/pay/...` on either listener, `/secapi/...` needing the HTTPS listener's
client certificate."""
from django.urls import path

from sandbox.wechatpay.v2 import calls
from sandbox.wechatpay.v2.api import v2_endpoint

unified_order_view = v2_endpoint(fault_target=calls.unified_order_target,
                                 reference=calls.trade_reference)(calls.unified_order)  # fmt: skip
order_query_view = v2_endpoint(fault_target="wechatpay.query", reference=calls.trade_reference)(calls.order_query)
close_order_view = v2_endpoint(fault_target="wechatpay.close", reference=calls.trade_reference)(calls.close_order)
refund_view = v2_endpoint(fault_target="wechatpay.refund", secure=True,
                          reference=calls.refund_create_reference)(calls.refund_create)  # fmt: skip
refund_query_view = v2_endpoint(fault_target="wechatpay.refund_query",
                                reference=calls.refund_query_reference)(calls.refund_query)  # fmt: skip
download_bill_view = v2_endpoint(fault_target="wechatpay.bill", errors_as_fail=True)(calls.download_bill)

urlpatterns = [
    path("pay/unifiedorder", unified_order_view, name="wechatpay-v2-unifiedorder"),
    path("pay/orderquery", order_query_view),
    path("pay/closeorder", close_order_view),
    path("pay/refundquery", refund_query_view),
    path("pay/downloadbill", download_bill_view),
    path("secapi/pay/refund", refund_view),
]
