"""Every document the code cites is in the repository, down to the section."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CITED_FILE = re.compile(r"\bdocs/([A-Za-z0-9_.-]+\.md)")
WECHAT_SECTION = re.compile(r"§(\d+(?:\.\d+)?)")
ALIPAY_UNIONPAY_SECTION = re.compile(r"(?<![\w-])([AB]\d{1,2})(?![\w-])")


def tracked_sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.split() if name.endswith((".py", ".html", ".txt", ".md", ".sh"))
            and not name.startswith(("docs/", "locale/")) and name != "tests/test_docs.py"]


def headings(doc: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (DOCS / doc).read_text(), flags=re.MULTILINE))


WECHAT_HEADINGS = headings("gateways-wechatpay.md", r"^#+ (\d+(?:\.\d+)?)[. ]")
ALIPAY_UNIONPAY_HEADINGS = headings("gateways-alipay-unionpay.md", r"^#+ ([AB]\d{1,2})\.")


def test_the_protocol_notes_keep_their_section_numbers():
    assert {"5.3", "6.9", "10.2", "12.8"} <= WECHAT_HEADINGS
    assert {f"A{n}" for n in range(1, 17)} | {f"B{n}" for n in range(1, 17)} <= ALIPAY_UNIONPAY_HEADINGS


def citation_problems(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    cited = set(CITED_FILE.findall(text))
    problems = [f"no docs/{name}" for name in sorted(cited) if not (DOCS / name).is_file()]
    # A § in a WeChat Pay module means the WeChat Pay notes, named or not.
    if "gateways-wechatpay.md" in cited or "wechatpay" in path.name or "wechatpay" in path.parent.name:
        problems += [f"§{section} is no heading of docs/gateways-wechatpay.md"
                     for section in sorted(set(WECHAT_SECTION.findall(text)) - WECHAT_HEADINGS)]
    if "gateways-alipay-unionpay.md" in cited:
        problems += [f"{section} is no heading of docs/gateways-alipay-unionpay.md"
                     for section in sorted(set(ALIPAY_UNIONPAY_SECTION.findall(text)) - ALIPAY_UNIONPAY_HEADINGS)]
    return problems


def test_every_cited_document_and_section_exists():
    problems = {str(path.relative_to(ROOT)): found for path in tracked_sources() if (found := citation_problems(path))}
    assert problems == {}


def test_a_missing_section_is_caught(tmp_path):
    module = tmp_path / "wechatpay_probe.py"
    module.write_text('"""See docs/gateways-wechatpay.md §5.3 and §99.1, docs/nowhere.md."""\n')
    assert citation_problems(module) == ["no docs/nowhere.md", "§99.1 is no heading of docs/gateways-wechatpay.md"]


def test_nothing_points_outside_the_clone():
    offenders = [str(path.relative_to(ROOT)) for path in tracked_sources()
                 if "/work/shared" in path.read_text(errors="replace") or "shared/docs/" in path.read_text(
                     errors="replace")]
    assert offenders == []
