from django.urls import path

from refunds import views

app_name = "refunds"

urlpatterns = [
    path("orders/<str:order_no>/refund/", views.refund_apply, name="apply"),
    path("refunds/<str:gateway>/notify/", views.gateway_refund_notify, name="notify"),
]
