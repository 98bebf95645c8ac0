"""The threaded WSGI server the sandbox runs in.

Django's development server classes, threaded, with no autoreloader. Two
additions to each request's environ: its socket, so a fault rule can drop
the connection after the work is done ("the gateway did it but the
merchant never heard back"), and the request target exactly as it came on
the request line, which WeChat Pay signatures cover (PATH_INFO is already
percent-decoded).
"""
from __future__ import annotations

import socket
import socketserver
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.http import HttpRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

SOCKET_ENVIRON_KEY = "sandbox.socket"
RAW_TARGET_ENVIRON_KEY = "sandbox.raw_target"


class SandboxRequestHandler(WSGIRequestHandler):
    def get_environ(self) -> WSGIEnvironment:
        # django-stubs says dict[str, str], but a WSGI environ holds other
        # values too (wsgi.input, and the socket added here).
        environ: WSGIEnvironment = super().get_environ()
        environ[SOCKET_ENVIRON_KEY] = self.connection
        environ[RAW_TARGET_ENVIRON_KEY] = self.path
        return environ


class ThreadedWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # Request threads must not keep the process alive at shutdown.
    daemon_threads = True


def serve(host: str, port: int, *, on_bind: Callable[[str, int], None]) -> None:
    """Serve until interrupted; `on_bind` gets the bound address (port 0 = any free port)."""
    httpd = ThreadedWSGIServer((host, port), SandboxRequestHandler, ipv6=":" in host)
    httpd.set_app(WSGIHandler())
    bound_host, bound_port = httpd.server_address[:2]
    # An AF_INET or AF_INET6 socket names its host as text (the bytes of the
    # declared type are for other families).
    assert isinstance(bound_host, str)
    on_bind(bound_host, bound_port)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


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
