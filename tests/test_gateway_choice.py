"""Which WeChat Pay API the shop speaks: chosen from the credentials set, and said at start-up."""
import logging

import pytest

from config.gateway_choice import V2, V3, wechatpay_api_choice
from payments.gateways import get_gateway, reset_gateway_cache, warn_about_configuration
from payments.gateways.wechatpay import WechatPayGateway
from payments.gateways.wechatpay_v2 import WechatPayV2Gateway

V2_KEY = {"WECHATPAY_API_KEY": "SandboxApiV2KeyNotASecret0000002"}


@pytest.mark.parametrize(
    ("environ", "version", "reason"),
    [
        ({}, V3, "no WeChat Pay credentials are set: v3 with the sandbox's defaults"),
        (V2_KEY, V2, "WECHATPAY_API_KEY (the API v2 key) is set and no API v3 credential is"),
        ({**V2_KEY, "WECHATPAY_MCHID": "1900000001", "WECHATPAY_CLIENT_CERT_PATH": "/etc/shop/cert.pem"}, V2,
         "no API v3 credential is"),
        ({"WECHATPAY_API_V3_KEY": "x" * 32}, V3, "API v3 credentials are set (WECHATPAY_API_V3_KEY)"),
        ({**V2_KEY, "WECHATPAY_PRIVATE_KEY_PATH": "/k.pem"}, V3,
         "both the API v2 key and API v3 credentials (WECHATPAY_PRIVATE_KEY_PATH) are set: v3 is preferred; "
         "set WECHATPAY_API_VERSION=v2 to use v2"),
        ({**V2_KEY, "WECHATPAY_PRIVATE_KEY_PATH": "/k.pem", "WECHATPAY_API_VERSION": "v2"}, V2,
         "WECHATPAY_API_VERSION=v2 says so"),
        ({"WECHATPAY_API_VERSION": "V2"}, V2, "WECHATPAY_API_VERSION=V2 says so"),
        ({**V2_KEY, "WECHATPAY_API_VERSION": "3"}, V3, "WECHATPAY_API_VERSION=3 says so"),
        ({**V2_KEY, "WECHATPAY_API_VERSION": "auto"}, V2, "the API v2 key"),
        ({**V2_KEY, "WECHATPAY_API_VERSION": "v4"}, V2,
         "WECHATPAY_API_VERSION='v4' is neither v2 nor v3 and is ignored; WECHATPAY_API_KEY"),
        ({"WECHATPAY_API_KEY": "  "}, V3, "no WeChat Pay credentials"),
    ],
)
def test_the_api_version_follows_the_credentials_and_says_why(environ, version, reason):
    choice = wechatpay_api_choice(environ)

    assert choice.version == version
    assert reason in choice.reason
    assert choice.message == f"WeChat Pay API {version}: {choice.reason}"


def test_start_up_names_the_api_version_in_use_and_why(settings, caplog):
    settings.PAYMENT_GATEWAYS = ["wechatpay"]
    settings.GATEWAY_CHOICES = {"wechatpay": "WeChat Pay API v2: WECHATPAY_API_KEY (the API v2 key) is set"}

    with caplog.at_level(logging.INFO, logger="payments.gateways"):
        warn_about_configuration()

    assert "payment gateway wechatpay: WeChat Pay API v2: WECHATPAY_API_KEY (the API v2 key) is set" in caplog.text


def test_tests_run_against_v3_whatever_the_shell_exports(settings):
    assert settings.GATEWAY_CLASSES["wechatpay"] == "payments.gateways.wechatpay.WechatPayGateway"
    assert "api_v3_key" in settings.GATEWAY_OPTIONS["wechatpay"]
    assert settings.WECHATPAY_V2_OPTIONS["api_base"].endswith("/wechatpay")
    assert WechatPayGateway.code == WechatPayV2Gateway.code == "wechatpay"


def test_the_chosen_adapter_is_the_one_get_gateway_builds(settings):
    reset_gateway_cache()
    settings.GATEWAY_CLASSES = {**settings.GATEWAY_CLASSES,
                                "wechatpay": "payments.gateways.wechatpay_v2.WechatPayV2Gateway"}
    from tests.payments.gateways.fixtures.wechatpay_v2 import stub

    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS, "wechatpay": stub.options()}

    gateway = get_gateway("wechatpay")

    assert isinstance(gateway, WechatPayV2Gateway)
    assert (gateway.code, str(gateway.display_name)) == ("wechatpay", "WeChat Pay")
    reset_gateway_cache()
