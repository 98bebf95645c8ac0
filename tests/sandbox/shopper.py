"""A shopper without a browser: opens sandbox pages over HTTP and presses the
buttons found by their data-testid, as a browser would submit the form."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


@dataclass
class TestIdElement:
    tag: str
    attrs: dict[str, str]
    form: dict[str, str] | None
    text: str = ""


class _TestIdParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[str, TestIdElement] = {}
        self._form: dict[str, str] | None = None
        self._open: list[TestIdElement] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = values
        if "data-testid" in values:
            element = TestIdElement(tag, values, self._form)
            self.elements[values["data-testid"]] = element
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if self._open and self._open[-1].tag == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


@dataclass
class SandboxPage:
    url: str
    status_code: int
    html: str
    elements: dict[str, TestIdElement] = field(default_factory=dict)

    def has(self, test_id: str) -> bool:
        return test_id in self.elements

    def element(self, test_id: str) -> TestIdElement:
        return self.elements[test_id]

    @property
    def state(self) -> str:
        return self.elements["sandbox-status"].attrs["data-status"]


class Shopper:
    def __init__(self) -> None:
        self.http = requests.Session()

    def _page(self, response: requests.Response) -> SandboxPage:
        parser = _TestIdParser()
        parser.feed(response.text)
        return SandboxPage(response.url, response.status_code, response.text, parser.elements)

    def open(self, url: str) -> SandboxPage:
        """GET a sandbox page, following redirects inside the sandbox."""
        return self._page(self.http.get(url, timeout=10))

    def arrive(self, response: requests.Response) -> SandboxPage:
        """Follow the gateway's redirect to the cashier page."""
        assert response.status_code == 302, response.text
        return self.open(urljoin(response.url, response.headers["Location"]))

    def press(self, page: SandboxPage, test_id: str) -> requests.Response:
        """Submit the button's form; redirects are NOT followed (the test reads them)."""
        button = page.element(test_id)
        form = button.form or {}
        target = urljoin(page.url, form.get("action", ""))
        data = {button.attrs["name"]: button.attrs["value"]} if button.attrs.get("name") else {}
        return self.http.request(form.get("method", "get").upper(), target, data=data, timeout=10, allow_redirects=False)

    def submit_stale(self, page: SandboxPage, action: str) -> requests.Response:
        """Post an action from a page loaded earlier, whose button is gone now."""
        return self.http.post(page.url, data={"action": action}, timeout=10, allow_redirects=False)

    def press_and_read(self, page: SandboxPage, test_id: str) -> SandboxPage:
        response = self.press(page, test_id)
        if response.status_code in (301, 302, 303):
            return self.open(urljoin(response.url, response.headers["Location"]))
        return self._page(response)
