"""Which WeChat Pay API the shop speaks, decided from the credentials the operator set.

One gateway, `wechatpay`, two adapters: API v3 (payments.gateways.wechatpay)
and the legacy API v2 (payments.gateways.wechatpay_v2). The operator does
not have to say which: a merchant holding only v2 credentials sets the v2
key, one on v3 sets the v3 ones. The decision and its reason are logged
at start-up (payments.gateways.warn_about_configuration).

- `WECHATPAY_API_VERSION` set to `v2` or `v3` decides;
- otherwise the API v2 key (`WECHATPAY_API_KEY`) set and no API v3
  credential set chooses v2;
- otherwise v3 (with both kinds set, v3, the API WeChat Pay recommends;
  with neither, v3 against the sandbox, as before v2 existed).

Pure: it reads the mapping it is given, so settings and tests share it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

V2 = "v2"
V3 = "v3"
VERSION_VARIABLE = "WECHATPAY_API_VERSION"
V2_KEY_VARIABLE = "WECHATPAY_API_KEY"
# Any of these set means the operator configured API v3.
V3_VARIABLES = (
    "WECHATPAY_API_V3_KEY",
    "WECHATPAY_PRIVATE_KEY_PATH",
    "WECHATPAY_CERT_SERIAL_NO",
    "WECHATPAY_PUBLIC_KEY_PATH",
    "WECHATPAY_PUBLIC_KEY_ID",
)
_SPELLINGS = {"v2": V2, "2": V2, "v3": V3, "3": V3}


@dataclass(frozen=True)
class ApiChoice:
    version: str
    reason: str

    @property
    def message(self) -> str:
        return f"WeChat Pay API {self.version}: {self.reason}"


def wechatpay_api_choice(environ: Mapping[str, str]) -> ApiChoice:
    """The API version for these environment variables, and why."""
    def is_set(name: str) -> bool:
        return bool(environ.get(name, "").strip())

    explicit = environ.get(VERSION_VARIABLE, "").strip()
    ignored = ""
    if explicit and explicit.lower() not in ("auto",):
        version = _SPELLINGS.get(explicit.lower())
        if version is not None:
            return ApiChoice(version, f"{VERSION_VARIABLE}={explicit} says so")
        ignored = f"{VERSION_VARIABLE}={explicit!r} is neither v2 nor v3 and is ignored; "
    v2 = is_set(V2_KEY_VARIABLE)
    v3_set = [name for name in V3_VARIABLES if is_set(name)]
    if v2 and not v3_set:
        return ApiChoice(V2, f"{ignored}{V2_KEY_VARIABLE} (the API v2 key) is set and no API v3 credential is")
    if v2:
        return ApiChoice(
            V3,
            f"{ignored}both the API v2 key and API v3 credentials ({', '.join(v3_set)}) are set: v3 is "
            f"preferred; set {VERSION_VARIABLE}=v2 to use v2",
        )
    if v3_set:
        return ApiChoice(V3, f"{ignored}API v3 credentials are set ({', '.join(v3_set)})")
    return ApiChoice(V3, f"{ignored}no WeChat Pay credentials are set: v3 with the sandbox's defaults")
