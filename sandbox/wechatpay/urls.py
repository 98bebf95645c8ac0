"""WeChat Pay's URLs: the v3 API, the shopper's pages, and its control routes.

The API lives under /wechatpay/v3/ so that a shop configured with
`WECHATPAY_API_BASE=<sandbox>/wechatpay` calls `<base>/v3/...`, and signs
the path with its /wechatpay prefix.
"""
from django.urls import path, re_path

from sandbox.wechatpay import bills, control, pages, refunds, transactions
from sandbox.wechatpay.api import not_found_view, v3_endpoint

native_view = v3_endpoint(
    methods=("POST",), fault_target="wechatpay.native", reference=transactions.transaction_reference
)(transactions.native_prepay)
h5_view = v3_endpoint(
    methods=("POST",), fault_target="wechatpay.h5", reference=transactions.transaction_reference
)(transactions.h5_prepay)
query_by_out_trade_no_view = v3_endpoint(
    methods=("GET",), fault_target="wechatpay.query", reference=transactions.transaction_reference
)(transactions.query_by_out_trade_no)
query_by_transaction_id_view = v3_endpoint(
    methods=("GET",), fault_target="wechatpay.query", reference=transactions.transaction_reference
)(transactions.query_by_transaction_id)
close_view = v3_endpoint(
    methods=("POST",), fault_target="wechatpay.close", reference=transactions.transaction_reference
)(transactions.close)
refund_create_view = v3_endpoint(
    methods=("POST",), fault_target="wechatpay.refund", reference=refunds.refund_create_reference
)(refunds.refund_create)
refund_query_view = v3_endpoint(
    methods=("GET",), fault_target="wechatpay.refund_query", reference=refunds.refund_query_reference
)(refunds.refund_query)
tradebill_view = v3_endpoint(methods=("GET",), fault_target="wechatpay.bill")(bills.tradebill)
billdownload_view = v3_endpoint(methods=("GET",))(bills.billdownload)

v3_urlpatterns = [
    path("pay/transactions/native", native_view, name="wechatpay-native"),
    path("pay/transactions/h5", h5_view, name="wechatpay-h5-prepay"),
    path("pay/transactions/out-trade-no/<str:out_trade_no>", query_by_out_trade_no_view),
    path("pay/transactions/out-trade-no/<str:out_trade_no>/close", close_view),
    path("pay/transactions/id/<str:transaction_id>", query_by_transaction_id_view),
    path("refund/domestic/refunds", refund_create_view),
    path("refund/domestic/refunds/<str:out_refund_no>", refund_query_view),
    path("bill/tradebill", tradebill_view),
    path("billdownload/file", billdownload_view, name="wechatpay-billdownload"),
    re_path(r"^(?P<rest>.*)$", not_found_view),
]

urlpatterns = [
    path("scan/<str:token>/", pages.scan_view, name="wechatpay-scan"),
    path("h5/<str:token>/", pages.h5_view, name="wechatpay-h5"),
]

control_urlpatterns = [
    re_path(r"^trades/?$", control.trades_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/?$", control.trade_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/pay/?$", control.trade_pay_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/scan/?$", control.trade_scan_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/fail/?$", control.trade_fail_view),
    re_path(r"^refunds/(?P<out_refund_no>[^/]+)/?$", control.refund_view),
    re_path(r"^refunds/(?P<out_refund_no>[^/]+)/settle/?$", control.refund_settle_view),
]
