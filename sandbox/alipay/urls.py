"""Alipay's URLs: the gateway, the shopper's pages, bill downloads, and its control routes."""
from django.urls import path, re_path

from sandbox.alipay import bills, cashier, control, gateway

urlpatterns = [
    path("gateway.do", gateway.gateway_view, name="alipay-gateway"),
    path("cashier/<str:token>/", cashier.cashier_view, name="alipay-cashier"),
    path("scan/<str:token>/", cashier.scan_view, name="alipay-scan"),
    path("bills/<str:token>/<str:filename>", bills.bill_download_view, name="alipay-bill-download"),
]

control_urlpatterns = [
    re_path(r"^trades/?$", control.trades_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/?$", control.trade_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/pay/?$", control.trade_pay_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/scan/?$", control.trade_scan_view),
    re_path(r"^trades/(?P<out_trade_no>[^/]+)/fail/?$", control.trade_fail_view),
]
