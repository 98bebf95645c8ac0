"""The baseline's own tables in the bench database: a payment and an order, no more."""

TABLES = ("bench_baseline_payment", "bench_baseline_order")

SCHEMA = """
CREATE TABLE bench_baseline_order (
    id bigserial PRIMARY KEY,
    order_no varchar(32) NOT NULL UNIQUE,
    total_minor bigint NOT NULL CHECK (total_minor > 0),
    consignee text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_baseline_payment (
    id bigserial PRIMARY KEY,
    out_trade_no varchar(64) NOT NULL UNIQUE,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    status varchar(16) NOT NULL,
    gateway_trade_no varchar(64) NOT NULL DEFAULT '',
    qr_content text NOT NULL DEFAULT '',
    paid_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def schema_create(cursor) -> None:
    cursor.execute(SCHEMA)


def pending_payments_seed(cursor, *, prefix: str, count: int, amount_minor: int) -> None:
    """`count` pending payments `<prefix><n>` written by the database itself."""
    cursor.execute(
        "INSERT INTO bench_baseline_payment (out_trade_no, amount_minor, status) "
        "SELECT %s || lpad(g::text, 7, '0'), %s, 'pending' FROM generate_series(1, %s) g",
        [prefix, amount_minor, count],
    )
