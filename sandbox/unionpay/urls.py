"""UnionPay's URLs: the gateway API, the file-transfer host, the shopper's
cashier page, and its control routes."""
from django.urls import path, re_path

from sandbox.unionpay import cashier, control, gateway

urlpatterns = [
    path("gateway/api/frontTransReq.do", gateway.front_view, name="unionpay-front"),
    path("gateway/api/backTransReq.do", gateway.back_view, name="unionpay-back"),
    path("gateway/api/queryTrans.do", gateway.query_view, name="unionpay-query"),
    path("filetransfer/", gateway.file_transfer_view, name="unionpay-file-transfer"),
    path("cashier/<str:token>/", cashier.cashier_view, name="unionpay-cashier"),
    path("autosubmit.js", cashier.autosubmit_view, name="unionpay-autosubmit"),
]

control_urlpatterns = [
    re_path(r"^trades/?$", control.trades_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/?$", control.trade_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/pay/?$", control.trade_pay_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/submit/?$", control.trade_submit_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/fail/?$", control.trade_fail_view),
    re_path(r"^refunds/(?P<out_refund_no>[^/]+)/?$", control.refund_view),
    re_path(r"^refunds/(?P<out_refund_no>[^/]+)/settle/?$", control.refund_settle_view),
]
