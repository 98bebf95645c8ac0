"""What every page carries: the favicon, the skip link, the language switch's button."""
import pytest


@pytest.mark.django_db
def test_the_favicon_browsers_ask_for_is_there(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response.url)
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_every_page_starts_with_a_skip_link_and_switches_language_with_a_button(client):
    page = client.get("/").content.decode()
    assert page.index('class="skip-link" href="#main"') < page.index('class="site-header"')
    assert '<main id="main"' in page
    assert 'data-testid="language-switch"' in page and "language.js" not in page
