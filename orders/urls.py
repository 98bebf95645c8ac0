from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.order_list, name="list"),
    path("orders/<str:order_no>/", views.order_detail, name="detail"),
    path("orders/<str:order_no>/received/", views.order_confirm_receipt, name="confirm_receipt"),
]
