import copy
import os
import shutil

import pytest
from django.utils import translation

from payments.gateways import get_gateway, reset_gateway_cache
from tests import network_guard
from tests.sandbox_process import SandboxProcess
from tests.shop.factories import SkuFactory, UserFactory


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A request in Chinese leaves Chinese active in the test's thread (LocaleMiddleware
    activates a language and nothing deactivates it): the next test starts in the default."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _resolve_loopback_names_only(monkeypatch):
    """Beside pytest-socket's connect guard (pyproject addopts): no DNS lookups."""
    network_guard.refuse_outside_names(monkeypatch)


@pytest.fixture(autouse=True)
def bills_storage(settings, tmp_path):
    """Each test keeps the bills it downloads in its own folder, never under var/."""
    settings.STORAGES = {**settings.STORAGES, "bills": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "bills")}}}
    return tmp_path / "bills"


@pytest.fixture
def shopper(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_shopper(db):
    return UserFactory(username="bob")


@pytest.fixture
def shopper_client(client, shopper):
    client.force_login(shopper)
    return client


@pytest.fixture
def fake_gateway():
    """The in-memory gateway (payments/gateways/fake.py), fresh for the test."""
    reset_gateway_cache()
    gateway = get_gateway("fake")
    yield gateway
    reset_gateway_cache()


@pytest.fixture
def tea(db):
    return SkuFactory(code="TEA-1", price_minor=8800, stock=10, product__name="Tea")


@pytest.fixture
def cup(db):
    return SkuFactory(code="CUP-1", price_minor=3990, stock=10, product__name="Cup")


# -- the sandbox gateway, as its own process ---------------------------------


@pytest.fixture(scope="session")
def gateway_sandbox(tmp_path_factory):
    """One sandbox process per test session (per xdist worker)."""
    process = SandboxProcess(tmp_path_factory.mktemp("sandbox"), time_scale=0.001)
    process.start()
    yield process
    process.stop()


def sandbox_gateway_options(base: dict, sandbox: SandboxProcess) -> dict:
    options = copy.deepcopy(base)
    keys = sandbox.keys_dir
    options["alipay"].update(
        app_private_key_path=str(keys / "alipay" / "app_private_key.pem"),
        alipay_public_key_path=str(keys / "alipay" / "alipay_public_key.pem"),
        gateway_url=sandbox.url("/alipay/gateway.do"),
    )
    options["wechatpay"].update(
        private_key_path=str(keys / "wechatpay" / "merchant_private_key.pem"),
        public_key_path=str(keys / "wechatpay" / "platform_public_key.pem"),
        api_base=sandbox.url("/wechatpay"),
    )
    options["unionpay"].update(
        sign_cert_path=str(keys / "unionpay" / "merchant_sign.pfx"),
        sign_cert_password="000000",
        verify_cert_path=str(keys / "unionpay" / "verify_chain.pem"),
        gateway_base=sandbox.url("/unionpay/gateway/api"),
        file_transfer_url=sandbox.url("/unionpay/filetransfer/"),
    )
    return options


WECHATPAY_V2_CLASS = "payments.gateways.wechatpay_v2.WechatPayV2Gateway"


def sandbox_wechatpay_v2_options(sandbox: SandboxProcess, **overrides) -> dict:
    """The shop's WeChat Pay API v2 options for this sandbox: its HTTPS base, CA and client certificate."""
    v2 = sandbox.control("GET", "config")["wechatpay_v2"]
    options = {name: v2[name] for name in ("mchid", "appid", "api_key", "api_base", "ca_bundle",
                                           "client_cert_path", "client_key_path")}  # fmt: skip
    return {**options, "sign_type": "MD5", "connect_timeout": 5.0, "read_timeout": 15.0, **overrides}


@pytest.fixture
def shop_sandbox_v2(shop_sandbox, settings):
    """`shop_sandbox` with WeChat Pay on API v2, as WECHATPAY_API_VERSION=v2 chooses it."""
    settings.GATEWAY_CLASSES = {**settings.GATEWAY_CLASSES, "wechatpay": WECHATPAY_V2_CLASS}
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS, "wechatpay": sandbox_wechatpay_v2_options(shop_sandbox)}
    reset_gateway_cache()
    yield shop_sandbox
    reset_gateway_cache()


@pytest.fixture
def shop_sandbox(gateway_sandbox, live_server, settings):
    """The sandbox, reset, with the live shop's gateways pointed at it.

    Shop and sandbox then talk real HTTP with real signatures both ways:
    calls from the shop, notifications from the sandbox to the live server.
    """
    gateway_sandbox.control("POST", "reset", {"settings": True})
    settings.SITE_URL = live_server.url
    settings.PAYMENT_GATEWAYS = ["alipay", "wechatpay", "unionpay"]
    settings.GATEWAY_OPTIONS = sandbox_gateway_options(settings.GATEWAY_OPTIONS, gateway_sandbox)
    reset_gateway_cache()
    yield gateway_sandbox
    # Stop re-sends so nothing reaches the live server after the test.
    gateway_sandbox.control("POST", "reset")
    reset_gateway_cache()


# -- headless Chromium (Debian's package) driven by Playwright ----------------
#
# Playwright's own browser download does not work on these machines; `make
# test` installs Debian's `chromium` and we point Playwright at it. One
# Playwright per worker: a second sync_playwright() in the same thread fails.

# Playwright's sync API runs an event loop in the test thread; the ORM calls
# the tests make between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        raise RuntimeError(
            f"Chromium not found at {path}: `make test` installs Debian's chromium package, "
            "or set CHROMIUM_PATH."
        )
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
