"""Every page speaks Simplified Chinese and English."""
import gettext
import re
import shutil
import subprocess
import sys

import polib
import pytest
from django.conf import settings
from django.urls import reverse

LOCALE_DIR = settings.BASE_DIR / "locale"
ZH_PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def test_chinese_catalogue_is_complete_and_keeps_placeholders():
    po = polib.pofile(str(ZH_PO))
    assert po.untranslated_entries() == []
    assert po.fuzzy_entries() == []
    for entry in po.translated_entries():
        for translation in translations(entry):
            assert sorted(PLACEHOLDER.findall(entry.msgid)) == sorted(PLACEHOLDER.findall(translation)), entry.msgid


def translations(entry: polib.POEntry) -> list[str]:
    """The msgstr, or every plural form's."""
    return list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]


@pytest.mark.parametrize("language", ["zh_Hans", "en"])
def test_compiled_catalogue_matches_its_source(language):
    po = polib.pofile(str(LOCALE_DIR / language / "LC_MESSAGES" / "django.po"))
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for entry in po.translated_entries():
        key = entry.msgid if not entry.msgctxt else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural:
            found = [compiled._catalog.get((key, n)) for n in sorted(entry.msgstr_plural)]
        else:
            found = [compiled._catalog.get(key)]
        assert found == translations(entry), f"run `make messages`: {entry.msgid!r} is stale"


def test_catalogue_has_every_marked_string(tmp_path):
    """Catches strings marked for translation but never extracted (`make messages`).

    makemessages writes into the catalogue beside the sources it walks, so it
    runs on a copy of the tree: the committed catalogue is only read.
    """
    if shutil.which("xgettext") is None:
        raise RuntimeError("xgettext missing: `make test` installs the gettext package")
    copy = tmp_path / "tree"
    shutil.copytree(
        settings.BASE_DIR, copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", "tests", "sandbox", "test-artifacts", "__pycache__",
                                      "*.mo", "node_modules"),
    )
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--ignore=.venv"],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": "sqlite://"},
        check=True,
        capture_output=True,
    )
    extracted = {entry.msgid for entry in polib.pofile(str(copy / "locale/zh_Hans/LC_MESSAGES/django.po"))
                 if not entry.obsolete}
    committed = {entry.msgid for entry in polib.pofile(str(ZH_PO)) if not entry.obsolete}
    assert extracted - committed == set(), "run `make messages` and translate the new strings"
    assert committed - extracted == set(), "run `make messages`: the catalogue has strings no longer used"


@pytest.mark.django_db
def test_pages_render_in_chinese_for_a_chinese_browser(client, tea):
    page = client.get(reverse("shop:catalogue"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "商品目录" in page
    assert "¥88.00 起" in page


@pytest.mark.django_db
def test_language_switch_sets_english(client):
    client.post(reverse("set_language"), {"language": "en", "next": "/"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    page = client.get(reverse("shop:catalogue"), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "Catalogue" in page and "商品目录" not in page
