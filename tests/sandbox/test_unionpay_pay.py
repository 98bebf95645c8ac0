"""The sandbox's UnionPay: keys, the front consume and its cashier page, queries,
request checks and call faults, driven by the shop's adapter and by our own
signer (sandbox/README.md "UnionPay")."""
from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from payments.exceptions import GatewayUnavailable, InvalidNotification
from payments.gateways.base import PayMethod, TradeReference, TradeStatus
from payments.gateways.unionpay.formats import format_txn_time
from payments.gateways.unionpay.signing import (
    check_unionpay_certificate,
    load_trust_bundle,
    message_certificate,
)
from tests.sandbox.unionpay_client import (
    MERCHANT_CERT_ID,
    Browser,
    cashier_for,
    keys,
    make_gateway,
    new_order_id,
    pay,
    payment_request,
    raw_notification,
)
from tests.sandbox_process import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-unionpay")]


def run_keys(keys_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "keys", "--keys-dir", str(keys_dir)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_keys_are_a_chain_the_shop_can_check_and_a_pfx_it_can_open(tmp_path):
    first = run_keys(tmp_path)
    assert first.returncode == 0, first.stderr
    directory = tmp_path / "unionpay"
    contents = {path.name: path.read_bytes() for path in directory.iterdir()}
    assert run_keys(tmp_path).returncode == 0
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == contents
    assert sorted(contents) == sorted([
        "merchant_sign.pfx", "merchant_sign_cert.pem", "middle_ca.pem", "middle_ca_key.pem", "root_ca.pem",
        "root_ca_key.pem", "unionpay_sign_cert.pem", "unionpay_sign_key.pem", "verify_chain.pem"])

    key, certificate, _extra = pkcs12.load_key_and_certificates(contents["merchant_sign.pfx"], b"000000")
    assert key is not None and str(certificate.serial_number) == MERCHANT_CERT_ID
    trust = load_trust_bundle(contents["verify_chain.pem"])
    signing = message_certificate({"signPubKeyCert": contents["unionpay_sign_cert.pem"].decode()})
    check_unionpay_certificate(signing, trust, at=datetime.now(UTC))

    (directory / "root_ca.pem").unlink()
    refused = run_keys(tmp_path)
    assert refused.returncode != 0 and "only part of the UnionPay key set" in refused.stderr


def test_a_front_consume_leads_to_the_cashier_and_is_unknown_until_paid(sandbox, unionpay, up_merchant, up):
    order_id = new_order_id()
    browser = Browser()
    cashier, request = cashier_for(sandbox, unionpay, up_merchant, order_id, browser)

    assert browser.state(cashier) == "announced"
    assert "88.00" in cashier.text and order_id in cashier.text
    assert unionpay.query_payment(TradeReference(order_id, request.requested_at)).status is TradeStatus.NOT_FOUND
    trade = sandbox.control("GET", f"unionpay/trades/{order_id}")
    assert (trade["channel_type"], trade["orig_resp_code"], trade["amount_minor"]) == ("07", None, 8800)
    assert trade["pay_timeout"] == format_txn_time(request.expires_at)
    assert trade["txn_time"] == format_txn_time(request.requested_at)


def test_pay_posts_a_verified_return_and_notifies_the_back_url(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)

    assert unionpay.parse_return(paid.returned) == order_id
    assert paid.returned["respCode"] == "00"
    (notification,) = up_merchant.wait_for_notifications(order_id, 1)
    assert notification.path == "/payments/unionpay/notify/"
    parsed = unionpay.parse_notification(raw_notification(notification))
    assert (parsed.status, parsed.amount_minor, parsed.gateway_trade_no) == (TradeStatus.SUCCEEDED, 8800,
                                                                             paid.query_id)
    assert parsed.requested_at == paid.reference.requested_at
    state = unionpay.query_payment(paid.reference)
    assert (state.status, state.gateway_trade_no, state.amount_minor) == (TradeStatus.SUCCEEDED, paid.query_id, 8800)
    assert len(paid.query_id) == 21


def test_a_phone_pays_on_the_mobile_channel(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    pay(sandbox, unionpay, up_merchant, order_id, method=PayMethod.WAP)
    assert sandbox.control("GET", f"unionpay/trades/{order_id}")["channel_type"] == "08"


def test_fail_declines_the_card_and_sends_no_back_notification(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    browser = Browser()
    cashier, request = cashier_for(sandbox, unionpay, up_merchant, order_id, browser)

    page = browser.press(cashier, "fail")

    action, fields = browser.return_form(page)
    assert action == request.return_url and fields["respCode"] == "01"
    assert unionpay.parse_return(fields) == order_id
    assert unionpay.query_payment(TradeReference(order_id, request.requested_at)).status is TradeStatus.FAILED
    sandbox.control("POST", "notifications/send-now")
    assert sandbox.control("GET", f"notifications?out_trade_no={order_id}")["notifications"] == []


def test_cancel_changes_nothing_at_unionpay(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    browser = Browser()
    cashier, request = cashier_for(sandbox, unionpay, up_merchant, order_id, browser)

    _action, fields = browser.return_form(browser.press(cashier, "cancel"))

    assert "queryId" not in fields and unionpay.parse_return(fields) == order_id
    assert unionpay.query_payment(TradeReference(order_id, request.requested_at)).status is TradeStatus.NOT_FOUND
    # Still payable afterwards.
    assert browser.state(browser.http.get(cashier.url, timeout=10)) == "announced"


def test_a_submitted_card_is_in_flight_until_it_ends(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    _cashier, request = cashier_for(sandbox, unionpay, up_merchant, order_id, Browser())
    reference = TradeReference(order_id, request.requested_at)

    sandbox.control("POST", f"unionpay/trades/{order_id}/submit")
    assert unionpay.query_payment(reference).status is TradeStatus.PENDING
    sandbox.control("POST", f"unionpay/trades/{order_id}/pay")
    assert unionpay.query_payment(reference).status is TradeStatus.SUCCEEDED


def test_the_query_knows_a_transaction_only_by_its_order_and_time(sandbox, unionpay, up_merchant, up):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    other_time = TradeReference(order_id, paid.reference.requested_at + timedelta(seconds=1))

    assert unionpay.query_payment(other_time).status is TradeStatus.NOT_FOUND
    answer = up.query(order_id, paid.reference.requested_at)
    assert (answer["respCode"], answer["origRespCode"], answer["queryId"]) == ("00", "00", paid.query_id)
    assert "\r\n" in answer["signPubKeyCert"]


def test_past_pay_timeout_the_cashier_refuses(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    browser = Browser()
    cashier, request = cashier_for(sandbox, unionpay, up_merchant, order_id, browser,
                                   expires_in=timedelta(minutes=1))
    sandbox.control("POST", "settings", {"clock_offset_seconds": 120})

    assert browser.state(browser.http.get(cashier.url, timeout=10)) == "expired"
    assert browser.press(cashier, "pay").status_code == 409
    assert unionpay.query_payment(TradeReference(order_id, request.requested_at)).status is TradeStatus.NOT_FOUND


@pytest.mark.parametrize("change, code", [
    ({"merId": "898110000009999"}, "31"),
    ({"txnAmt": ""}, "13"),
    ({"channelType": "09"}, "10"),
    ({"orderId": "short"}, "10"),
    ({"version": "5.0.0"}, "10"),
])
def test_a_wrong_front_consume_gets_an_error_page(sandbox, up, up_merchant, change, code):
    fields = {name: value for name, value in {**up.front_fields(up_merchant, new_order_id()), **change}.items()
              if value != ""}
    response = Browser().submit(sandbox.url("/unionpay/gateway/api/frontTransReq.do"), up.signed(fields))
    assert response.status_code == 400
    assert f'data-code="{code}"' in response.text


def test_signatures_and_cert_ids_are_checked(sandbox, up, up_merchant):
    from cryptography.hazmat.primitives.asymmetric import rsa

    url = sandbox.url("/unionpay/gateway/api/frontTransReq.do")
    fields = up.front_fields(up_merchant, new_order_id())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for body in (up.signed(fields, key=stranger), up.signed({**fields, "certId": "1"}),
                 {**up.signed(fields), "txnAmt": "1"}):
        response = Browser().submit(url, body)
        assert response.status_code == 400 and 'data-code="11"' in response.text
    assert Browser().submit(url, up.signed(fields)).status_code == 302


def test_the_same_order_at_another_time_is_a_duplicate(sandbox, up, up_merchant):
    order_id = new_order_id()
    url = sandbox.url("/unionpay/gateway/api/frontTransReq.do")
    first = up.front_fields(up_merchant, order_id, txnTime="20240501100000")
    assert Browser().submit(url, up.signed(first)).status_code == 302
    again = Browser().submit(url, up.signed(first))
    assert again.status_code == 302
    other = Browser().submit(url, up.signed({**first, "txnTime": "20240501100001"}))
    assert 'data-code="12"' in other.text


def test_query_faults_make_the_adapter_retry_later(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    sandbox.control("POST", "faults", {"target": "unionpay.query", "mode": "error", "code": "06"})
    with pytest.raises(GatewayUnavailable, match="respCode 06"):
        unionpay.query_payment(paid.reference)
    sandbox.control("POST", "faults", {"target": "unionpay.query", "mode": "timeout", "seconds": 1.0})
    with pytest.raises(GatewayUnavailable, match="timeout"):
        make_gateway(sandbox, read_timeout=0.3).query_payment(paid.reference)
    assert unionpay.query_payment(paid.reference).status is TradeStatus.SUCCEEDED


def test_a_front_fault_shows_an_error_page(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    sandbox.control("POST", "faults", {"target": "unionpay.front", "mode": "error", "code": "06",
                                       "out_trade_no": order_id})
    request_action = unionpay.start_payment(payment_request(up_merchant, order_id))
    response = Browser().submit(request_action.url, request_action.form_fields)
    assert response.status_code == 400 and 'data-code="06"' in response.text


def test_the_returned_fields_are_refused_once_tampered(sandbox, unionpay, up_merchant):
    paid = pay(sandbox, unionpay, up_merchant, new_order_id())
    with pytest.raises(InvalidNotification):
        unionpay.parse_return({**paid.returned, "respCode": "01"})
    assert keys(sandbox, "verify_chain.pem").exists()
