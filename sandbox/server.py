"""The threaded WSGI servers the sandbox runs in: plain HTTP, and HTTPS beside it.

Django's development server classes, threaded, with no autoreloader. Two
additions to each request's environ: its socket, so a fault rule can drop
the connection after the work is done ("the gateway did it but the
merchant never heard back"), and the request target exactly as it came on
the request line, which WeChat Pay signatures cover (PATH_INFO is already
percent-decoded).

The HTTPS listener (WeChat Pay API v2, docs/gateways-wechatpay.md §10.3)
serves the same URLs with the sandbox CA's server certificate and asks for
a client certificate: one issued by another CA fails the handshake, none
at all is allowed by TLS and left for the view to refuse (`/secapi/`
requires one). The handshake runs in the connection's own thread, never
in the accepting one. Each request's environ says whether it came over
TLS and which verified client certificate it presented.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.http import HttpRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

SOCKET_ENVIRON_KEY = "sandbox.socket"
RAW_TARGET_ENVIRON_KEY = "sandbox.raw_target"
PEER_CERTIFICATE_ENVIRON_KEY = "sandbox.peer_certificate"
# A client that connects and says nothing does not hold a thread forever.
TLS_SOCKET_TIMEOUT_SECONDS = 30.0

# The base URLs the process serves ("http", "https"), set once bound: the
# pages a shopper opens are always given on plain HTTP, whichever listener
# the merchant called.
LISTENER_URLS: dict[str, str] = {}


class SandboxRequestHandler(WSGIRequestHandler):
    def get_environ(self) -> WSGIEnvironment:
        # django-stubs says dict[str, str], but a WSGI environ holds other
        # values too (wsgi.input, and the socket added here).
        environ: WSGIEnvironment = super().get_environ()
        environ[SOCKET_ENVIRON_KEY] = self.connection
        environ[RAW_TARGET_ENVIRON_KEY] = self.path
        if isinstance(self.connection, ssl.SSLSocket):
            environ["HTTPS"] = "on"
            # Verified against the sandbox CA during the handshake; None when
            # the client sent no certificate.
            environ[PEER_CERTIFICATE_ENVIRON_KEY] = self.connection.getpeercert() or None
        return environ


class ThreadedWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # Request threads must not keep the process alive at shutdown.
    daemon_threads = True
    # Django's 10 would drop connection bursts (a shop's workers opening
    # their pools at once, `make bench`'s slow answers) into a SYN retry a
    # second later; each accepted connection gets its own thread anyway.
    request_queue_size = 128


class TlsWSGIServer(ThreadedWSGIServer):
    """The same server over TLS; the handshake happens in the request's thread."""

    def __init__(self, address: tuple[str, int], handler: Any, *, context: ssl.SSLContext, ipv6: bool) -> None:
        self.ssl_context = context
        super().__init__(address, handler, ipv6=ipv6)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(TLS_SOCKET_TIMEOUT_SECONDS)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            # A client certificate from another CA, plain HTTP on the TLS
            # port, a client that gave up: no request to serve.
            logger.info("TLS handshake with %s refused: %s", client_address[0], error)
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            connection.close()


def _bound(server: ThreadedWSGIServer) -> tuple[str, int]:
    bound_host, bound_port = server.server_address[:2]
    # An AF_INET or AF_INET6 socket names its host as text (the bytes of the
    # declared type are for other families).
    assert isinstance(bound_host, str)
    return bound_host, bound_port


def base_url(scheme: str, host: str, port: int) -> str:
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown_host}:{port}"


def serve(host: str, port: int, *, on_bind: Callable[[str, int, int | None], None],
          tls_port: int | None = None, tls_context: ssl.SSLContext | None = None) -> None:  # fmt: skip
    """Serve until interrupted; `on_bind` gets the bound host, port and TLS port (0 = any free port).

    With `tls_context`, an HTTPS listener on `tls_port` serves the same
    application beside the plain one.
    """
    httpd = ThreadedWSGIServer((host, port), SandboxRequestHandler, ipv6=":" in host)
    httpd.set_app(WSGIHandler())
    bound_host, bound_port = _bound(httpd)
    LISTENER_URLS["http"] = base_url("http", bound_host, bound_port)
    tls_server: TlsWSGIServer | None = None
    bound_tls_port: int | None = None
    if tls_context is not None:
        tls_server = TlsWSGIServer((host, tls_port or 0), SandboxRequestHandler, context=tls_context,
                                   ipv6=":" in host)  # fmt: skip
        tls_server.set_app(WSGIHandler())
        bound_tls_port = _bound(tls_server)[1]
        LISTENER_URLS["https"] = base_url("https", bound_host, bound_tls_port)
        threading.Thread(target=tls_server.serve_forever, name="tls-listener", daemon=True).start()
    on_bind(bound_host, bound_port, bound_tls_port)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        if tls_server is not None:
            tls_server.shutdown()
            tls_server.server_close()


def raw_request_target(request: HttpRequest) -> str:
    """Path and query exactly as on the request line; rebuilt (re-quoted)
    when the server did not record it."""
    return request.META.get(RAW_TARGET_ENVIRON_KEY) or request.get_full_path()


def connection_drop(request: HttpRequest) -> bool:
    """Cut the request's connection without an answer; False when the server
    does not expose the socket (then the caller answers normally)."""
    connection = request.META.get(SOCKET_ENVIRON_KEY)
    if connection is None:
        return False
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True
