"""Test doubles for the Alipay adapter: a stub gateway that checks our signatures
and answers like Alipay (A5, A16), signed notifications, and bill archives (A11).

The stub verifies every request it receives with the app PUBLIC key, independently
of the adapter's own code path, and signs answers with a throw-away "Alipay" key.
"""
from __future__ import annotations

import base64
import io
import json
import urllib.parse
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests
import responses
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FIXTURES = Path(__file__).parent / "fixtures" / "alipay"
GATEWAY_URL = "https://openapi.alipay.test/gateway.do"
APP_ID = "2021000149600001"
SELLER_ID = "2088721000000001"


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verifies(key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def answer_text(
    method: str,
    node: dict[str, Any] | str,
    key: rsa.RSAPrivateKey | None,
    *,
    escape_slashes: bool = True,
    node_name: str | None = None,
) -> str:
    """An answer as Alipay writes it: `/` escaped as `\\/`, the exact node text signed."""
    node_text = node if isinstance(node, str) else compact(node)
    if escape_slashes:
        node_text = node_text.replace("/", "\\/")
    name = node_name or method.replace(".", "_") + "_response"
    if key is None:
        return f'{{"{name}":{node_text}}}'
    return f'{{"{name}":{node_text},"sign":"{rsa_sign(key, node_text)}"}}'


def ok(**fields: Any) -> dict[str, Any]:
    return {"code": "10000", "msg": "Success", **fields}


def refused(sub_code: str, sub_msg: str = "refused", code: str = "40004") -> dict[str, Any]:
    return {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}


class AlipayStub:
    """The gateway URL, served by `responses`: answers queued per method, in order."""

    def __init__(self, mock: responses.RequestsMock, alipay_key: rsa.RSAPrivateKey, app_public_key: rsa.RSAPublicKey):
        self.alipay_key = alipay_key
        self.app_public_key = app_public_key
        self.queued: dict[str, list[Any]] = defaultdict(list)
        self.requests: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.timeouts: list[Any] = []
        mock.add_callback(responses.POST, GATEWAY_URL, callback=self._reply)

    def answer(self, method: str, node: dict[str, Any] | None = None, **options: Any) -> None:
        """Queue `node` signed, or `text=` verbatim, `status=`, `error=` (an exception to raise)."""
        self.queued[method].append({"node": node, **options})

    def biz(self, index: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[index]["biz_content"])

    def methods(self) -> list[str]:
        return [params["method"] for params in self.requests]

    def _reply(self, request: requests.PreparedRequest) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        pairs = urllib.parse.parse_qsl(body or "", keep_blank_values=True)
        params = dict(pairs)
        assert len(params) == len(pairs), "a parameter was sent twice"
        assert "" not in params.values(), "an empty parameter was sent"
        signed = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign")
        assert rsa_verifies(self.app_public_key, signed, params["sign"]), "request signature does not verify"
        self.requests.append(params)
        self.urls.append(request.url)
        self.timeouts.append(request.req_kwargs.get("timeout"))
        queue = self.queued[params["method"]]
        assert queue, f"no answer queued for {params['method']}"
        item = queue.pop(0)
        if item.get("error") is not None:
            return item["error"]
        if "text" in item:
            text = item["text"]
        else:
            text = answer_text(params["method"], item["node"], item.get("key", self.alipay_key))
        headers = {"Content-Type": "text/html;charset=utf-8"}
        return (item.get("status", 200), headers, text.encode("utf-8"))

    def unanswered(self) -> dict[str, int]:
        return {method: len(queue) for method, queue in self.queued.items() if queue}


def callback_signature(fields: dict[str, str], key: rsa.RSAPrivateKey, *, keep_sign_type: bool = False) -> str:
    """Sign like Alipay signs a notification or return: no sign, no sign_type, no empties."""
    excluded = {"sign"} if keep_sign_type else {"sign", "sign_type"}
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in excluded and v != "")
    return rsa_sign(key, text)


def form_body(fields: dict[str, str], charset: str = "utf-8") -> bytes:
    return urllib.parse.urlencode(fields, encoding=charset).encode("ascii")


# -- bills ----------------------------------------------------------------------

HEADER_25 = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
    "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,"
    "券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
).split(",")
# A later variant: no 分润, the refund number column without "/请求号", five
# new columns, 备注 no longer last.
HEADER_29 = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
    "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,"
    "券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号,服务费（元）,实收净额（元）,商户识别号,交易方式,备注,"
    "花呗分期手续费,花呗分期数"
).split(",")
ID_COLUMNS = {"支付宝交易号", "商户订单号", "业务类型", "对方账户", "退款批次号/请求号", "退款批次号", "门店编号"}


def bill_row(header: list[str], **cells: str) -> str:
    """One CSV row: unnamed money cells are 0.00; identifier cells end with a TAB as Alipay writes them."""
    names = {
        "trade_no": "支付宝交易号",
        "out_trade_no": "商户订单号",
        "kind": "业务类型",
        "subject": "商品名称",
        "created": "创建时间",
        "finished": "完成时间",
        "amount": "订单金额（元）",
        "received": "商家实收（元）",
        "refund_no": "退款批次号/请求号" if "退款批次号/请求号" in header else "退款批次号",
        "fee": "服务费（元）",
        "buyer": "对方账户",
    }
    by_header = {names[key]: value for key, value in cells.items()}
    out = []
    for name in header:
        value = by_header.get(name, "0.00" if "元" in name else "")
        if '"' in value or "," in value:
            value = '"' + value.replace('"', '""') + '"'
        if name in ID_COLUMNS:
            value += "\t"
        out.append(value)
    return ",".join(out)


def bill_text(
    header: list[str],
    rows: list[str],
    *,
    payment_total: str | None,
    refund_total: str | None,
    end_marker: bool = True,
) -> list[str]:
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20887210000000010156]",
        "#起始日期：[2024年04月30日 00:00:00]   终止日期：[2024年05月01日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ",".join(header),
        *rows,
    ]
    if end_marker:
        lines.append("#-----------------------------------------业务明细列表结束------------------------------------")
    if payment_total is not None:
        lines.append(payment_total)
    if refund_total is not None:
        lines.append(refund_total)
    lines.append("#导出时间：[2024年05月01日 05:46:49]")
    return lines


class GbkNamedEntry(zipfile.ZipInfo):
    """A ZIP entry whose name is written in GBK without the UTF-8 flag, as Alipay writes it."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (zipfile's name)
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def bill_zip(detail_lines: list[str], *, newline: str = "\r\n", detail: bool = True) -> bytes:
    """The archive `bill_download_url` serves: detail and summary CSVs, GBK inside and out."""
    prefix = "20887210000000010156_20240430"
    summary = "\r\n".join(
        [
            "#支付宝业务明细查询",
            "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
            "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）",
            "合计,,1,1,68.88,68.88,0.00,0.00,0.00,-0.41,0.00,68.47",
        ]
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if detail:
            archive.writestr(GbkNamedEntry(f"{prefix}_业务明细.csv"), newline.join(detail_lines).encode("gbk"))
        archive.writestr(GbkNamedEntry(f"{prefix}_业务明细(汇总).csv"), summary.encode("gbk"))
    return buffer.getvalue()
