from django.urls import path

from payments import views

app_name = "payments"

GATEWAY = "<str:gateway>"

urlpatterns = [
    path("orders/<str:order_no>/pay/", views.cashier, name="cashier"),
    path(f"payments/{GATEWAY}/notify/", views.gateway_notify, name="notify"),
    path(f"payments/{GATEWAY}/return/", views.gateway_return, name="return"),
    path("payments/<str:out_trade_no>/qr/", views.qr_page, name="qr"),
    path("payments/<str:out_trade_no>/status/", views.payment_status, name="status"),
    path("payments/<str:out_trade_no>/result/", views.payment_result, name="result"),
]
