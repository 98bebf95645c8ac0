"""The sandbox's URLs: each provider under /<provider>/, the control API under /_control/."""
from django.urls import URLPattern, URLResolver, include, path, re_path

from sandbox import control
from sandbox.alipay import urls as alipay_urls
from sandbox.unionpay import urls as unionpay_urls
from sandbox.wechatpay import urls as wechatpay_urls
from sandbox.wechatpay.v2 import urls as wechatpay_v2_urls

# Control routes take an optional trailing slash: they are typed by hand.
control_urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^health/?$", control.health_view),
    re_path(r"^config/?$", control.config_view),
    re_path(r"^reset/?$", control.reset_view),
    re_path(r"^settings/?$", control.settings_view),
    re_path(r"^faults/?$", control.faults_view),
    re_path(r"^faults/clear/?$", control.faults_clear_view),
    re_path(r"^faults/(?P<rule_id>\d+)/?$", control.fault_view),
    re_path(r"^notifications/?$", control.notifications_view),
    re_path(r"^notifications/send-now/?$", control.notifications_send_now_view),
    path("alipay/", include(alipay_urls.control_urlpatterns)),
    path("wechatpay/", include(wechatpay_urls.control_urlpatterns)),
    path("unionpay/", include(unionpay_urls.control_urlpatterns)),
]

urlpatterns = [
    path("_control/", include(control_urlpatterns)),
    path("alipay/", include(alipay_urls.urlpatterns)),
    path("wechatpay/v3/", include(wechatpay_urls.v3_urlpatterns)),
    path("wechatpay/", include(wechatpay_urls.urlpatterns)),
    path("wechatpay/", include(wechatpay_v2_urls.urlpatterns)),
    path("unionpay/", include(unionpay_urls.urlpatterns)),
]
