from django.urls import path

from bench.baseline import views

urlpatterns = [
    path("payments/alipay/notify/", views.alipay_notify),
    path("payments/wechatpay/notify/", views.wechatpay_notify),
    path("checkout/", views.checkout),
    path("orders/<str:order_no>/pay/", views.payment_start),
]
