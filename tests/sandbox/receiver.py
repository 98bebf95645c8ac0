"""A tiny merchant for the sandbox to talk to: records notifications (POST) and
browser returns (GET) on a loopback port, and answers as the test scripts it.

Requests are grouped by the out_trade_no they concern: by default the
form field of that name (Alipay); WeChat Pay tests pass a `reference`
that decrypts the notification's resource."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fields: dict[str, str]
    # Per receiver, in arrival order.
    sequence: int
    received_at: datetime
    # The out_trade_no it concerns, as the receiver's `reference` found it.
    reference: str | None = None


# (request, how many requests for the same out_trade_no came before) -> (status, body)
Answer = Callable[[Received, int], tuple[int, bytes]]
# request -> the out_trade_no it concerns (None: unknown)
Reference = Callable[[Received], "str | None"]


def always_success(request: Received, earlier: int) -> tuple[int, bytes]:
    return 200, b"success"


def form_reference(request: Received) -> str | None:
    return request.fields.get("out_trade_no")


class MerchantReceiver:
    def __init__(self, answer: Answer = always_success, *, reference: Reference = form_reference) -> None:
        self.answer = answer
        self.reference = reference
        self.received: list[Received] = []
        # Waiters sleep on the condition and wake when a request is recorded.
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                text = body.decode("utf-8") if self.command == "POST" else url.query
                fields = dict(parse_qsl(text, keep_blank_values=True))
                status, answer = receiver._record(self.command, url.path, dict(self.headers), body, fields)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="merchant-receiver", daemon=True
        )

    def _record(self, method: str, path: str, headers: dict, body: bytes, fields: dict) -> tuple[int, bytes]:
        request = Received(method, path, headers, body, fields, 0, datetime.now(UTC))
        request = replace(request, reference=self.reference(request))
        with self._arrived:
            request = replace(request, sequence=len(self.received))
            earlier = sum(
                1 for other in self.received
                if other.method == method and other.reference == request.reference
            )  # fmt: skip
            self.received.append(request)
            self._arrived.notify_all()
        return self.answer(request, earlier)

    def start(self) -> MerchantReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def notify_url(self) -> str:
        return self.base_url + "/payments/alipay/notify/"

    @property
    def return_url(self) -> str:
        return self.base_url + "/payments/alipay/return/"

    @property
    def wechatpay_notify_url(self) -> str:
        return self.base_url + "/payments/wechatpay/notify/"

    @property
    def wechatpay_refund_notify_url(self) -> str:
        return self.base_url + "/refunds/wechatpay/notify/"

    @property
    def wechatpay_return_url(self) -> str:
        return self.base_url + "/payments/wechatpay/return/"

    def notifications(self, out_trade_no: str | None = None) -> list[Received]:
        with self._arrived:
            return [
                request for request in self.received
                if request.method == "POST" and out_trade_no in (None, request.reference)
            ]  # fmt: skip

    def _wait(self, found: Callable[[], list[Received]], count: int, timeout: float, what: str) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(found()) >= count, timeout=timeout):
                raise TimeoutError(f"{len(found())} of {count} {what} arrived")
            return found()

    def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Every POST, whatever it concerns (forgeries that do not decrypt too)."""
        return self._wait(self.notifications, count, timeout, "POSTs")

    def wait_for_notifications(self, out_trade_no: str, count: int, timeout: float = 10.0) -> list[Received]:
        return self._wait(lambda: self.notifications(out_trade_no), count, timeout,
                          f"notifications for {out_trade_no}")
