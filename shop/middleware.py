"""Bad input is a 4xx before any view or query sees it.

PostgreSQL refuses a NUL character in text, so a `%00` in a URL segment or a
form value would surface as a database error (a 500). A path with a NUL is a
404 (no such page can exist); a query or form value with one is a 400.
Views that read their raw body themselves (the gateways' notify endpoints,
marked with `reads_raw_body`) are left to their own checks: their body is
for the adapter to verify, and reading it as a form here would parse it.

A gateway calling back is no browser. `ServerToServerMiddleware` sends a
POST to a view marked `@server_to_server` (the gateways' notify endpoints)
past the middleware only a browser needs: sessions, language, CSRF, the
signed-in user, messages, framing and CSP headers, login throttling and
static files (BROWSER_ONLY). The rest of settings.MIDDLEWARE after it, in
its order (CommonMiddleware's Content-Length, the NUL check), wraps the
view as Django would. MIDDLEWARE stays the one list: what is added to it
runs for the gateways too, unless it is named in BROWSER_ONLY.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import BadRequest, MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver, set_urlconf
from django.utils import translation
from django.utils.module_loading import import_string

View = TypeVar("View", bound=Callable[..., Any])
Handler = Callable[[HttpRequest], HttpResponse]
NUL = "\x00"

# What serves only a browser: skipped for a server-to-server view.
BROWSER_ONLY = frozenset({
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
})


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


def server_to_server(view: View) -> View:
    """Mark a view another server POSTs to: the browser's middleware is skipped for it."""
    view.server_to_server = True  # type: ignore[attr-defined]
    return view


class ServerToServerMiddleware:
    """Route a POST to a `@server_to_server` view around the browser-only middleware.

    Sits in MIDDLEWARE after SecurityMiddleware (whose headers every answer
    keeps). Other requests, and a path that resolves to no view, continue
    down the whole stack unchanged; only POSTs are resolved here, so pages
    pay nothing.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._view_middleware: list[Callable[..., HttpResponse | None]] = []
        self._exception_middleware: list[Callable[[HttpRequest, Exception], HttpResponse | None]] = []
        self.lean = self._lean_chain()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method == "POST":
            urlconf = getattr(request, "urlconf", None)
            if urlconf is not None:
                set_urlconf(urlconf)
            try:
                match = get_resolver(urlconf).resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "server_to_server", False):
                request.resolver_match = match
                # What LocaleMiddleware picks for a client that asks for no
                # language, never the language a page before it left active
                # in this thread.
                with translation.override(settings.LANGUAGE_CODE):
                    lean: HttpResponseBase = self.lean(request)
                return lean
        return self.get_response(request)

    def _lean_chain(self) -> Callable[[HttpRequest], Any]:
        # The middleware listed after this one, less the browser's, built
        # innermost first as Django's BaseHandler.load_middleware does.
        paths = list(settings.MIDDLEWARE)
        here = f"{type(self).__module__}.{type(self).__qualname__}"
        kept = [path for path in paths[paths.index(here) + 1:] if path not in BROWSER_ONLY]
        handler: Callable[[HttpRequest], Any] = convert_exception_to_response(self._view)
        for path in reversed(kept):
            try:
                instance = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            if hasattr(instance, "process_template_response"):
                raise NotImplementedError(f"{path}.process_template_response on a server-to-server view")
            handler = convert_exception_to_response(instance)
        return handler

    def _view(self, request: HttpRequest) -> HttpResponse:
        match = request.resolver_match
        assert match is not None  # set by __call__
        for process_view in self._view_middleware:
            answered = process_view(request, match.func, match.args, match.kwargs)
            if answered:
                return answered
        try:
            response: HttpResponse | None = match.func(request, *match.args, **match.kwargs)
        except Exception as exc:
            for process_exception in self._exception_middleware:
                answered = process_exception(request, exc)
                if answered:
                    return answered
            raise
        if response is None:
            raise ValueError(f"the view {match.func.__module__}.{match.func.__qualname__} returned None")
        if hasattr(response, "render") and callable(response.render):
            response = response.render()
        return response
