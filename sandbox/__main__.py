"""Command line of the sandbox gateway.

    python -m sandbox serve [--host H] [--port P] [--tls-port P] [--keys-dir DIR]
                            [--db PATH] [--time-scale F]
                            [--refund-settle-after SECONDS|none] [--ready-file PATH]
    python -m sandbox keys [--keys-dir DIR]

`serve` creates the schema, generates missing keys, starts the notification
dispatcher thread and serves threaded WSGI (no autoreloader): plain HTTP on
`--port`, and HTTPS on `--tls-port` (WeChat Pay API v2, whose refunds need
mutual TLS; the certificates come from the keys directory). Port 0 binds
any free port; the addresses are printed and, with --ready-file, the HTTP
base URL is written to that file once both sockets are bound (the HTTPS
one is in GET /_control/config). `--refund-settle-after` is when
(sandbox-clock seconds, times the time scale) a WeChat Pay refund still
processing ends SUCCESS by itself and is notified (default 10; `none`:
never, as the tests start it); it is the start-up value of the runtime
setting refund_settle_after_seconds. Defaults come from SANDBOX_HOST,
SANDBOX_PORT, SANDBOX_TLS_PORT, SANDBOX_KEYS_DIR, SANDBOX_DB_PATH, SANDBOX_TIME_SCALE and
SANDBOX_REFUND_SETTLE_AFTER.
`keys` only generates missing keys; it never overwrites one.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from sandbox import config


def _settle_after(text: str) -> float | None:
    try:
        return config.refund_settle_after_parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 or 'none', not {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The sandbox payment gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    keys_dir_default = os.environ.get("SANDBOX_KEYS_DIR") or str(config.DEFAULT_KEYS_DIR)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default=os.environ.get("SANDBOX_HOST") or config.DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT") or config.DEFAULT_PORT))
    serve.add_argument(
        "--tls-port",
        type=int,
        default=int(os.environ.get("SANDBOX_TLS_PORT") or config.DEFAULT_TLS_PORT),
        help="the HTTPS listener (WeChat Pay API v2, mutual TLS); 0 binds any free port",
    )
    serve.add_argument("--keys-dir", default=keys_dir_default)
    serve.add_argument("--db", default=os.environ.get("SANDBOX_DB_PATH") or str(config.DEFAULT_DB_PATH))
    serve.add_argument(
        "--time-scale",
        type=float,
        default=float(os.environ.get("SANDBOX_TIME_SCALE") or config.DEFAULT_TIME_SCALE),
        help="multiply every provider delay by this (e.g. 0.001 in tests)",
    )
    serve.add_argument(
        "--refund-settle-after",
        type=_settle_after,
        default=os.environ.get("SANDBOX_REFUND_SETTLE_AFTER") or config.DEFAULT_REFUND_SETTLE_AFTER,
        metavar="SECONDS|none",
        help="a WeChat Pay refund still processing this long (times the time scale) after its creation "
        "ends SUCCESS by itself and is notified; 'none': never (default %(default)s)",
    )
    serve.add_argument("--ready-file", help="write the base URL here once the socket is bound")

    keys = commands.add_parser("keys", help="generate missing keys")
    keys.add_argument("--keys-dir", default=keys_dir_default)
    return parser


def _keys(keys_dir: Path) -> None:
    from sandbox.keys import keys_ensure

    for path in keys_ensure(keys_dir):
        print(f"generated {path}")
    print(f"sandbox keys ready in {keys_dir}")


def _write_ready_file(path: Path, base_url: str) -> None:
    # Rename into place: the waiting side never reads half a URL.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(base_url + "\n")
    temporary.replace(path)


def _serve(args: argparse.Namespace) -> None:
    if args.time_scale <= 0:
        raise SystemExit("--time-scale must be > 0")
    keys_dir = Path(args.keys_dir).resolve()
    db_path = Path(args.db).resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # The sandbox is its own Django project, whatever the shell exported.
    os.environ["DJANGO_SETTINGS_MODULE"] = "sandbox.settings"
    os.environ["SANDBOX_KEYS_DIR"] = str(keys_dir)
    os.environ["SANDBOX_DB_PATH"] = str(db_path)
    os.environ["SANDBOX_TIME_SCALE"] = repr(args.time_scale)
    settle_after = "none" if args.refund_settle_after is None else repr(args.refund_settle_after)
    os.environ["SANDBOX_REFUND_SETTLE_AFTER"] = settle_after
    settle_text = "never" if args.refund_settle_after is None else f"after {args.refund_settle_after:g} s"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    _keys(keys_dir)

    from sandbox.certificates import tls_server_context
    from sandbox.notifications import dispatcher_start
    from sandbox.server import base_url as listener_url
    from sandbox.server import serve

    dispatcher_start()

    def announce(host: str, port: int, tls_port: int | None) -> None:
        base_url = listener_url("http", host, port)
        tls_text = f" and {listener_url('https', host, tls_port)}" if tls_port is not None else ""
        print(
            f"sandbox gateway serving {base_url}{tls_text} (db {db_path}, time scale {args.time_scale}, "
            f"WeChat Pay and UnionPay refunds settle by themselves {settle_text})",
            flush=True,
        )
        if args.ready_file:
            _write_ready_file(Path(args.ready_file), base_url)

    # Stop cleanly on SIGTERM as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        serve(args.host, args.port, on_bind=announce, tls_port=args.tls_port,
              tls_context=tls_server_context(keys_dir / "wechatpay"))
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "keys":
        _keys(Path(args.keys_dir).resolve())
    else:
        _serve(args)


if __name__ == "__main__":
    main()
