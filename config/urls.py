from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.health import healthz
from config.metrics import metrics
from shop import views as shop_views

urlpatterns = [
    path("", include("shop.urls")),
    path("", include("orders.urls")),
    path("", include("payments.urls")),
    path("", include("refunds.urls")),
    path("finance/reconciliation/", include("reconciliation.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", shop_views.signup, name="signup"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
