"""Fixed identities of the sandbox's merchants and buyer, and start-up defaults.

The shop's settings default to the same identities (docs/CONTRACT.md), so a fresh
clone pays against the sandbox with no configuration. Values that tests may
change while the sandbox runs live in `sandbox.runtime` instead.
"""
import math
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
# The HTTPS listener (WeChat Pay API v2: mutual TLS for /secapi/).
DEFAULT_TLS_PORT = 8002
DEFAULT_KEYS_DIR = REPO_ROOT / "var" / "sandbox-keys"
DEFAULT_DB_PATH = REPO_ROOT / "var" / "sandbox" / "sandbox.sqlite3"
DEFAULT_TIME_SCALE = 1.0
# Seconds (sandbox clock, times the time scale) after which a WeChat Pay
# refund still processing ends SUCCESS by itself and is notified, as the
# real one does; `none` never (`--refund-settle-after`).
DEFAULT_REFUND_SETTLE_AFTER = "10"


def refund_settle_after_parse(text: str) -> float | None:
    """`--refund-settle-after` / SANDBOX_REFUND_SETTLE_AFTER: seconds >= 0, or `none`.

    Raises ValueError for anything else.
    """
    text = text.strip()
    if text.lower() == "none":
        return None
    seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a number of seconds >= 0: {text}")
    return seconds


# -- Alipay -------------------------------------------------------------------
# The merchant application (app_id) and the account (PID) that receives the
# money. Requests naming another app_id get isv.invalid-app-id.
ALIPAY_APP_ID = "2021000149600001"
ALIPAY_SELLER_ID = "2088721000000001"
ALIPAY_SELLER_EMAIL = "merchant@sandbox.alipay.test"
# The one buyer who pays every sandbox trade; logon ids are masked on the wire.
ALIPAY_BUYER_ID = "2088102177846875"
ALIPAY_BUYER_LOGON_ID = "san***@sandbox.alipay.test"

# -- WeChat Pay (API v3, direct merchant, public-key mode) -------------------
# The merchant (mchid) and its app (appid); requests naming another mchid in
# the Authorization header fail with SIGN_ERROR (the sandbox holds no key
# for it), another appid with APPID_MCHID_NOT_MATCH.
WECHATPAY_MCHID = "1900000001"
WECHATPAY_APPID = "wx8888888888888888"
# Serial of the merchant API certificate: `serial_no` in Authorization.
WECHATPAY_MERCHANT_SERIAL_NO = "3775B6A45ACD588826D15E583A95F5DD00000001"
# The id of the "WeChat Pay public key" (platform_public_key.pem): every
# answer and notification says `Wechatpay-Serial: <this>`.
WECHATPAY_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000002025112200000000000001"
# The APIv3 key (32 ASCII bytes) that encrypts notification resources. A
# published throwaway value, like the sandbox keys.
WECHATPAY_API_V3_KEY = "SandboxApiV3KeyNotASecret0000001"
# The one payer of every sandbox trade.
WECHATPAY_PAYER_OPENID = "oSandboxPayer0000000000000001"
WECHATPAY_BANK_TYPE = "OTHERS"

# -- WeChat Pay API v2 (the same merchant and app) ---------------------------
# The 32-character API v2 key: signs every v2 call and answer, and (its MD5)
# encrypts refund notifications. A published throwaway value.
WECHATPAY_V2_API_KEY = "SandboxApiV2KeyNotASecret0000002"
# The merchant platform hands out apiclient_cert.p12 protected by the mchid
# (docs/gateways-wechatpay.md §12.12).
WECHATPAY_V2_P12_PASSWORD = WECHATPAY_MCHID

# -- UnionPay (ACP 5.1.0, online gateway payment) ----------------------------
# The merchant (merId); requests naming another get respCode 31. Its
# signing certificate's serial is the certId every request must carry
# (sandbox/unionpay/certificates.py), its PFX password a published
# throwaway value.
UNIONPAY_MER_ID = "898110000000001"
# The issuer and acquirer institution codes shown in settlement files.
UNIONPAY_ACQ_INS_CODE = "00010000"
UNIONPAY_SEND_INS_CODE = "00010000"
# The one card that pays every sandbox trade, masked as UnionPay shows it.
UNIONPAY_CARD_NO = "6216***********0018"
# Fee on every consume in settlement files: 0.6 %, rounded half up to the fen.
UNIONPAY_FEE_PER_MILLE = 6
