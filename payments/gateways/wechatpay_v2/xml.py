"""WeChat Pay API v2's XML envelope, read defensively and written plainly.

docs/gateways-wechatpay.md §10.1: a flat `<xml><name>value</name>...</xml>`
in UTF-8, string values possibly in CDATA; the decrypted refund
notification (§10.5) is the same shape under `<root>`. Nothing WeChat
sends needs more, so anything more is refused before it can cost anything:

- a size limit (a real answer or notification is a few kilobytes);
- strict UTF-8 (§10.3 `NOT_UTF8`), whatever an XML declaration claims;
- no markup declaration but CDATA: a DOCTYPE, and with it every entity
  declaration (XXE, billion laughs), is refused before lxml sees the
  bytes, as are comments and processing instructions;
- lxml itself with entity resolution, DTD loading and network access off,
  and huge-tree support off, in case anything slipped past;
- one root of the expected name, only leaf children, no attributes, no
  namespaces, no repeated names.

Every refusal is an XmlProblem whose reason says what was wrong without
quoting the body.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree

# The largest body read: far above any real answer or notification (a
# refund query with 50 refunds is about 30 KiB), far below anything that
# could hurt.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 1000
UTF8_BOM = b"\xef\xbb\xbf"

# A field name as WeChat writes them: `total_fee`, `coupon_fee_0`.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DECLARATION = re.compile(r"<\?xml[ \t\r\n][^?>]*\?>")
_DECLARED_ENCODING = re.compile(r"""encoding[ \t\r\n]*=[ \t\r\n]*["']([A-Za-z0-9._-]+)["']""")
_CDATA_OPEN = "<![CDATA["
_CDATA_SECTION = re.compile(r"<!\[CDATA\[.*?\]\]>", re.DOTALL)


class XmlProblem(ValueError):
    """A body that is not a flat WeChat Pay XML document; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_fields(data: bytes, *, root: str = "xml", limit: int = MAX_BODY_BYTES) -> dict[str, str]:
    """The fields of a flat `<root>` document, CDATA unwrapped; XmlProblem otherwise."""
    if len(data) > limit:
        raise XmlProblem(f"the body is {len(data)} bytes, more than the {limit} accepted")
    data = data.removeprefix(UTF8_BOM)
    if not data.strip():
        raise XmlProblem("the body is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise XmlProblem("the body is not UTF-8") from None
    _refuse_markup(text)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        strip_cdata=True,
        # The bytes were just checked to be UTF-8: a declaration claiming
        # another encoding is not believed.
        encoding="utf-8",
    )
    try:
        document = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlProblem(f"the body is not well-formed XML (line {exc.lineno})") from None
    return _flat_fields(document, root)


def _refuse_markup(text: str) -> None:
    text = text.lstrip()
    declaration = _DECLARATION.match(text)
    if declaration:
        encoding = _DECLARED_ENCODING.search(declaration.group(0))
        if encoding and encoding.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise XmlProblem(f"the XML declaration claims encoding {encoding.group(1)[:16]!r}, not UTF-8")
        text = text[declaration.end():]
    # CDATA content is text: whatever it holds is no markup.
    outside = _CDATA_SECTION.sub("", text)
    if _CDATA_OPEN in outside:
        raise XmlProblem("an unterminated CDATA section")
    if "<!" in outside:
        # <!DOCTYPE (and with it every <!ENTITY), <!-- comments -->, ...
        raise XmlProblem("markup declarations (DOCTYPE, ENTITY, comments) are refused")
    if "<?" in outside:
        raise XmlProblem("processing instructions are refused")


def _flat_fields(document: etree._Element, root: str) -> dict[str, str]:
    if document.tag != root:
        raise XmlProblem(f"the root element is not <{root}>")
    if document.attrib:
        raise XmlProblem(f"<{root}> carries attributes")
    if (document.text or "").strip():
        raise XmlProblem(f"<{root}> holds text outside its fields")
    fields: dict[str, str] = {}
    for child in document:
        if not isinstance(child.tag, str) or not _FIELD_NAME.fullmatch(child.tag):
            raise XmlProblem("a field is not a plain element")
        if child.attrib or len(child):
            raise XmlProblem(f"field {child.tag} is not a plain value")
        if child.tag in fields:
            raise XmlProblem(f"field {child.tag} appears twice")
        if (child.tail or "").strip():
            raise XmlProblem(f"text after field {child.tag}")
        fields[child.tag] = child.text or ""
        if len(fields) > MAX_FIELDS:
            raise XmlProblem(f"more than {MAX_FIELDS} fields")
    return fields


def to_xml(fields: Mapping[str, str]) -> bytes:
    """`<xml><name>value</name>...</xml>`, UTF-8, values escaped as XML text.

    Raises ValueError for a name that is not a plain field name or a value
    XML cannot hold (control characters).
    """
    document = etree.Element("xml")
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"not a field name: {name!r}")
        etree.SubElement(document, name).text = value
    return etree.tostring(document, encoding="utf-8", xml_declaration=False)
