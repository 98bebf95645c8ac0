"""The sandbox keeps a merchant's connection open between calls, as the providers do."""
import http.client
from urllib.parse import urlsplit


def test_two_calls_travel_on_one_connection(sandbox):
    address = urlsplit(sandbox.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/_control/config")
        first = connection.getresponse()
        first.read()
        socket_before = connection.sock
        connection.request("POST", "/alipay/gateway.do", body="method=alipay.trade.precreate",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        second = connection.getresponse()
        second.read()

        assert first.status == 200 and first.getheader("Connection") != "close"
        assert int(first.getheader("Content-Length")) > 0
        # http.client reconnects silently when the server closed; the same socket means it did not.
        assert connection.sock is socket_before is not None
        assert second.getheader("Content-Length") is not None
    finally:
        connection.close()
