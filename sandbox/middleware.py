"""The sandbox's one middleware: answers that say their length, so connections stay open.

Django's development server closes the connection after any answer
without a Content-Length, and the sandbox has no other middleware that
would set one: every merchant call then paid for a new TCP connection,
and the sandbox for a new thread and a new SQLite connection. Providers
keep connections alive; so does the sandbox now.
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


def content_length(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
        return response

    return middleware
