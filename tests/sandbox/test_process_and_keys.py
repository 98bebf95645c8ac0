"""`python -m sandbox keys` and `serve`: the key layout the shop relies on, and start-up."""
import os
import subprocess
import sys

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.sandbox.alipay_client import AlipayTestClient
from tests.sandbox_process import REPO_ROOT, SERVE_DEFAULT, SandboxProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]

KEY_FILES = ["app_private_key.pem", "app_public_key.pem", "alipay_private_key.pem", "alipay_public_key.pem"]
WECHATPAY_KEY_FILES = [
    "merchant_private_key.pem", "merchant_public_key.pem", "platform_private_key.pem", "platform_public_key.pem",
]  # fmt: skip
# API v2: the sandbox's CA, its HTTPS listener's certificate, the merchant's client certificate.
WECHATPAY_TLS_FILES = [
    "sandbox_ca.pem", "sandbox_ca_key.pem", "server_cert.pem", "server_key.pem",
    "apiclient_cert.pem", "apiclient_key.pem", "apiclient_cert.p12",
]  # fmt: skip


def run_keys(keys_dir) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "keys", "--keys-dir", str(keys_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def public_numbers(pem: bytes):
    return serialization.load_pem_public_key(pem).public_numbers()


def test_keys_are_generated_in_the_contract_layout_once(tmp_path):
    keys_dir = tmp_path / "keys"

    first_output = run_keys(keys_dir)
    contents = {name: (keys_dir / "alipay" / name).read_bytes() for name in KEY_FILES}
    second_output = run_keys(keys_dir)

    assert sorted(path.name for path in (keys_dir / "alipay").iterdir()) == sorted(KEY_FILES)
    assert sorted(path.name for path in keys_dir.iterdir()) == ["alipay", "unionpay", "wechatpay"]
    generated = [line for line in first_output.splitlines() if line.startswith("generated ")]
    # The Alipay and WeChat Pay key files, WeChat Pay v2's TLS files, nine UnionPay certificate files.
    assert len(generated) == len(KEY_FILES) + len(WECHATPAY_KEY_FILES) + len(WECHATPAY_TLS_FILES) + 9
    assert not [line for line in second_output.splitlines() if line.startswith("generated ")]
    assert {name: (keys_dir / "alipay" / name).read_bytes() for name in KEY_FILES} == contents
    assert contents["app_private_key.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")
    for owner in ("app", "alipay"):
        private = serialization.load_pem_private_key(contents[f"{owner}_private_key.pem"], password=None)
        assert private.key_size == 2048
        assert private.public_key().public_numbers() == public_numbers(contents[f"{owner}_public_key.pem"])
    assert public_numbers(contents["app_public_key.pem"]) != public_numbers(contents["alipay_public_key.pem"])


def test_wechatpay_keys_are_generated_in_the_contract_layout_once(tmp_path):
    keys_dir = tmp_path / "keys"

    run_keys(keys_dir)
    contents = {name: (keys_dir / "wechatpay" / name).read_bytes() for name in WECHATPAY_KEY_FILES}
    run_keys(keys_dir)

    assert sorted(path.name for path in (keys_dir / "wechatpay").iterdir()) == sorted(
        WECHATPAY_KEY_FILES + WECHATPAY_TLS_FILES
    )
    assert {name: (keys_dir / "wechatpay" / name).read_bytes() for name in WECHATPAY_KEY_FILES} == contents
    # The shop signs with the merchant key: PKCS#8, as apiclient_key.pem is.
    assert contents["merchant_private_key.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")
    for owner in ("merchant", "platform"):
        private = serialization.load_pem_private_key(contents[f"{owner}_private_key.pem"], password=None)
        assert private.key_size == 2048
        assert private.public_key().public_numbers() == public_numbers(contents[f"{owner}_public_key.pem"])
    assert public_numbers(contents["merchant_public_key.pem"]) != public_numbers(contents["platform_public_key.pem"])


def test_a_missing_public_key_is_derived_from_the_kept_private_key(tmp_path):
    keys_dir = tmp_path / "keys"
    run_keys(keys_dir)
    public_path = keys_dir / "alipay" / "alipay_public_key.pem"
    original = public_path.read_bytes()
    public_path.unlink()

    run_keys(keys_dir)

    assert public_numbers(public_path.read_bytes()) == public_numbers(original)


def test_a_second_sandbox_with_its_own_keys_and_clock(tmp_path):
    """SandboxProcess picks a free port; the keys it serves with are the ones in its dir."""
    with SandboxProcess(tmp_path, time_scale=0.5) as other:
        assert other.base_url.startswith("http://127.0.0.1:")
        assert not other.base_url.endswith((":8000", ":8001"))
        assert other.control("GET", "settings")["time_scale"] == 0.5
        client = AlipayTestClient(other.alipay_gateway_url, other.keys_dir)
        assert client.call("alipay.trade.query", {"out_trade_no": "X"}).sub_code == "ACQ.TRADE_NOT_EXIST"
        url = other.base_url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_control/health", timeout=2)


def test_serve_settles_wechatpay_refunds_after_10_seconds_by_default(tmp_path, sandbox_process):
    """`make run` shows the refund notification path: WeChat Pay refunds end by themselves."""
    with SandboxProcess(tmp_path, keys_dir=sandbox_process.keys_dir, refund_settle_after=SERVE_DEFAULT) as other:
        start = other.control("GET", "settings")["refund_settle_after_seconds"]
        other.control("POST", "settings", {"refund_settle_after_seconds": {"wechatpay": None}})
        restored = other.control("POST", "reset", {"settings": True})["settings"]["refund_settle_after_seconds"]

    assert start == restored == {"alipay": None, "wechatpay": 10, "unionpay": 10}
    assert sandbox_process.control("GET", "settings")["refund_settle_after_seconds"]["wechatpay"] is None


@pytest.mark.parametrize(
    ("options", "environment"),
    [
        (["--refund-settle-after", "soon"], {}),
        (["--refund-settle-after=-1"], {}),
        ([], {"SANDBOX_REFUND_SETTLE_AFTER": "later"}),
    ],
)
def test_serve_refuses_a_bad_refund_settle_after(tmp_path, options, environment):
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "serve", "--keys-dir", str(tmp_path / "keys"),
         "--db", str(tmp_path / "db.sqlite3"), "--port", "0", *options],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **environment},
    )  # fmt: skip

    assert done.returncode == 2
    assert "--refund-settle-after" in done.stderr and "seconds >= 0 or 'none'" in done.stderr
    assert not (tmp_path / "db.sqlite3").exists()
