"""Bad input is a 4xx before any view or query sees it.

PostgreSQL refuses a NUL character in text, so a `%00` in a URL segment or a
form value would surface as a database error (a 500). A path with a NUL is a
404 (no such page can exist); a query or form value with one is a 400.
Views that read their raw body themselves (the gateways' notify endpoints,
marked with `reads_raw_body`) are left to their own checks: their body is
for the adapter to verify, and reading it as a form here would parse it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse, QueryDict

View = TypeVar("View", bound=Callable[..., Any])
NUL = "\x00"


def reads_raw_body(view: View) -> View:
    """Mark a view whose request body must reach it unparsed."""
    view.reads_raw_body = True  # type: ignore[attr-defined]
    return view


class RejectNulCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path_info:
            raise Http404("no page has a NUL character in its address")
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any,
                     view_kwargs: Any) -> None:
        if getattr(view_func, "reads_raw_body", False):
            return
        if _has_nul(request.GET) or (request.method == "POST" and _has_nul(request.POST)):
            raise BadRequest("a NUL character in a form value")


def _has_nul(data: QueryDict) -> bool:
    return any(NUL in key or any(NUL in value for value in values) for key, values in data.lists())
