"""WeChat Pay v3 request authentication (§3), answer signatures (§4) and error bodies (§8)."""
import re
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sandbox.wechatpay_client import MCHID, PUBLIC_KEY_ID, SCHEME, SERIAL_NO, compact_json
from tests.sandbox.wechatpay_flows import prepay

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

QUERY_PATH = "/v3/pay/transactions/out-trade-no/{}"


def query(wx, out_trade_no: str, **options):
    return wx.call("GET", QUERY_PATH.format(out_trade_no), query=f"mchid={MCHID}", **options)


def stranger_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def native_body(trade_no: str, notify: str, **changes) -> dict:
    return {
        "appid": "wx8888888888888888",
        "mchid": MCHID,
        "description": "龙井茶",
        "out_trade_no": trade_no,
        "notify_url": notify,
        "amount": {"total": 100, "currency": "CNY"},
        **changes,
    }


def test_a_signed_call_gets_a_signed_compact_answer(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)

    response = query(wx, out_trade_no)

    assert response.status_code == 200
    assert wx.answer_verifies(response)
    assert response.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    assert response.headers["Wechatpay-Signature-Type"] == SCHEME
    assert re.fullmatch(r"[0-9A-F]{32}", response.headers["Wechatpay-Nonce"])
    assert response.headers["Request-ID"]
    assert response.content == compact_json(response.json())
    assert "未支付".encode() in response.content  # non-ASCII sent raw
    assert response.json()["trade_state"] == "NOTPAY"


def test_the_answer_timestamp_is_real_time_even_on_a_shifted_clock(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)
    sandbox.control("POST", "settings", {"clock_offset_seconds": 3 * 3600})

    before = int(time.time())
    response = query(wx, out_trade_no)
    after = int(time.time())

    assert response.status_code == 200 and wx.answer_verifies(response)
    assert before <= int(response.headers["Wechatpay-Timestamp"]) <= after


def test_authorization_pairs_may_come_in_any_order(sandbox, wx, out_trade_no):
    header = wx.authorization("GET", f"/wechatpay{QUERY_PATH.format(out_trade_no)}?mchid={MCHID}", b"")
    pairs = header.removeprefix(SCHEME + " ").split(",")

    response = query(wx, out_trade_no, authorization=SCHEME + " " + ",".join(reversed(pairs)))

    assert (response.status_code, response.json()["code"]) == (404, "ORDER_NOT_EXIST")


def test_a_timestamp_four_minutes_old_is_still_accepted(sandbox, wx, out_trade_no):
    response = query(wx, out_trade_no, timestamp=int(time.time()) - 240)

    assert response.json()["code"] == "ORDER_NOT_EXIST"


BAD_AUTHORIZATIONS = {
    "missing": {"authorization": ""},
    "another scheme": {"authorization": 'WECHATPAY2-SHA256-RSA2048X mchid="1900000001"'},
    "a stranger's key": {"private_key_pem": "stranger"},
    "wrong serial_no": {"serial_no": "0" * 40},
    "wrong mchid": {"mchid": "1900009999"},
    "timestamp 6 minutes old": {"timestamp": "old"},
    "timestamp 6 minutes ahead": {"timestamp": "ahead"},
    "path signed without the /wechatpay prefix": {"sign_target": "unprefixed"},
    "query left out of the signed path": {"sign_target": "no query"},
}


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATIONS))
def test_a_bad_authorization_is_refused_with_401_sign_error(sandbox, wx, out_trade_no, case):
    options = dict(BAD_AUTHORIZATIONS[case])
    path = QUERY_PATH.format(out_trade_no)
    if options.get("private_key_pem") == "stranger":
        options["private_key_pem"] = stranger_key()
    if options.get("timestamp") in ("old", "ahead"):
        options["timestamp"] = int(time.time()) + (-360 if options["timestamp"] == "old" else 360)
    if options.get("sign_target") == "unprefixed":
        options["sign_target"] = f"{path}?mchid={MCHID}"
    elif options.get("sign_target") == "no query":
        options["sign_target"] = f"/wechatpay{path}"

    response = query(wx, out_trade_no, **options)

    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    assert response.json()["message"]
    assert "Wechatpay-Signature" not in response.headers


def test_a_body_other_than_the_signed_one_is_refused(sandbox, wx, wx_merchant, out_trade_no):
    sent = native_body(out_trade_no, wx_merchant.wechatpay_notify_url)
    signed = native_body(out_trade_no, wx_merchant.wechatpay_notify_url, amount={"total": 1, "currency": "CNY"})
    path = "/v3/pay/transactions/native"
    authorization = wx.authorization("POST", "/wechatpay" + path, compact_json(signed))

    response = wx.call("POST", path, payload=sent, authorization=authorization)

    assert (response.status_code, response.json()["code"]) == (401, "SIGN_ERROR")


def test_a_pair_list_with_spaces_is_refused(sandbox, wx, out_trade_no):
    header = wx.authorization("GET", f"/wechatpay{QUERY_PATH.format(out_trade_no)}?mchid={MCHID}", b"")

    response = query(wx, out_trade_no, authorization=header.replace('",', '", '))

    assert (response.status_code, response.json()["code"]) == (401, "SIGN_ERROR")


def test_a_wechatpay_serial_header_naming_another_key_is_refused(sandbox, wx, out_trade_no):
    response = query(wx, out_trade_no, headers={"Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000000000"})

    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    assert response.json()["detail"]["location"] == "header"


def test_errors_carry_code_message_and_a_request_id_but_no_signature(sandbox, wx, out_trade_no):
    response = query(wx, out_trade_no)

    assert response.status_code == 404
    assert response.json() == {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
    assert response.headers["Request-ID"]
    assert "Wechatpay-Signature" not in response.headers


def test_a_query_without_mchid_names_the_missing_parameter(sandbox, wx, out_trade_no):
    response = wx.call("GET", QUERY_PATH.format(out_trade_no))

    assert response.status_code == 400
    assert response.json()["code"] == "PARAM_ERROR"
    assert response.json()["detail"] == {**response.json()["detail"], "field": "mchid", "location": "query"}


def test_a_query_for_another_mchid_is_refused(sandbox, wx, out_trade_no):
    response = wx.call("GET", QUERY_PATH.format(out_trade_no), query="mchid=1900009999")

    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"description": ""}, "PARAM_ERROR", "description"),
        ({"amount": {"total": 1.5, "currency": "CNY"}}, "PARAM_ERROR", "amount.total"),
        ({"amount": {"total": "100"}}, "PARAM_ERROR", "amount.total"),
        ({"amount": {"total": 0}}, "PARAM_ERROR", "amount.total"),
        ({"amount": {"total": 100, "currency": "USD"}}, "PARAM_ERROR", "amount.currency"),
        ({"notify_url": "https://shop.example/notify?x=1"}, "PARAM_ERROR", "notify_url"),
        ({"out_trade_no": "T1"}, "PARAM_ERROR", "out_trade_no"),
        ({"time_expire": "2030-01-01 00:00:00"}, "PARAM_ERROR", "time_expire"),
        ({"appid": "wx0000000000000000"}, "APPID_MCHID_NOT_MATCH", None),
        ({"mchid": "1900009999"}, "PARAM_ERROR", "mchid"),
    ],
)
def test_a_bad_prepay_field_is_refused_naming_it(sandbox, wx, wx_merchant, out_trade_no, changes, code, field):
    body = native_body(out_trade_no, wx_merchant.wechatpay_notify_url, **changes)

    response = wx.call("POST", "/v3/pay/transactions/native", payload=body)

    assert (response.status_code, response.json()["code"]) == (400, code)
    if field:
        assert response.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    "headers",
    [{"User-Agent": ""}, {"Accept": "text/html"}, {"Content-Type": "application/x-www-form-urlencoded"}],
    ids=["no user agent", "accept without json", "form body"],
)
def test_the_api_v3_header_rules_are_enforced(sandbox, wx, wx_merchant, out_trade_no, headers):
    body = native_body(out_trade_no, wx_merchant.wechatpay_notify_url)

    response = wx.call("POST", "/v3/pay/transactions/native", payload=body, headers=headers)

    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")
    assert wx.call("GET", QUERY_PATH.format(out_trade_no), query=f"mchid={MCHID}").status_code == 404


def test_a_body_that_is_not_json_is_refused(sandbox, wx):
    response = wx.call("POST", "/v3/pay/transactions/native", body=b"<xml></xml>")

    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")


def test_unknown_paths_and_methods_are_refused(sandbox, wx):
    unknown = wx.call("GET", "/v3/pay/transactions/jsapi")
    wrong_method = wx.call("GET", "/v3/pay/transactions/native")

    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_the_merchant_serial_is_compared_in_upper_case(sandbox, wx, out_trade_no):
    response = query(wx, out_trade_no, serial_no=SERIAL_NO.lower())

    assert response.json()["code"] == "ORDER_NOT_EXIST"
