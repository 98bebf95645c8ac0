"""`make bench`: reconciling a million-line bill per gateway, beside a raw COPY + FULL OUTER JOIN.

For each gateway it plants discrepancies in a bill written in that gateway's
real format (Alipay's GBK CSV in a ZIP, WeChat Pay's gzipped backtick CSV)
against as many local payments: 333 lines we never had (missing here), 333
payments the bill lacks (missing at the gateway), 334 amounts that differ.
Then, in the same run and on the same data:

- reconcile: `statement_reconcile` end to end, in a process of its own so
  its peak RSS is its own (the file stored and hashed, parsed as a stream,
  loaded with COPY, matched with SQL, the discrepancies stored); the
  download is the one thing left out, the adapter handing over the file;
- raw: COPY of the same lines, already normalised to CSV in the columns the
  line table keeps, into a temporary table, and one FULL OUTER JOIN with
  the day's payments (the same work memory as the match).

It checks that every planted discrepancy is found and nothing else, prints
the figures, and with `--linear 3` also reconciles a bill three times the
size to show the time grows linearly. It needs PostgreSQL (DATABASE_URL)
and works in a database of its own, `<name>_bench`, dropped at the end.

    python bench/reconcile.py [--lines 1000000] [--gateways alipay,wechatpay] [--linear 3] [--keep]

`run_bench()` is what tests/bench/test_bench_smoke.py calls with a few
thousand lines, so the benchmark cannot rot; it is not a timed test.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import bench_database_url, database_drop, database_recreate  # noqa: E402

DAY = date(2026, 11, 30)
# Reconciled the morning after.
MORNING_AFTER = "2026-12-01T10:05:00+08:00"
# Payments spread over 23:53:20 of the day, clear of the cross-day carry.
SPREAD_SECONDS = 86_000
PLANTED = {"missing_here": 333, "missing_at_gateway": 333, "amount_mismatch": 334}
SELLER_ID = "2088721000000001"
MCHID = "1900000001"
APPID = "wx8888888888888888"

ALIPAY_COLUMNS = [
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
    "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
    "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
    "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
]  # fmt: skip
WECHAT_COLUMNS = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
]  # fmt: skip
WECHAT_SUMMARY = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                  "申请退款总金额"]
PREFIX = {"alipay": "A", "wechatpay": "W"}


# -- the bill-only gateways ----------------------------------------------------------


def bench_gateway(base: type) -> type:
    """The real adapter, handing over a bill file written here instead of downloading one."""

    class BenchGateway(base):  # type: ignore[misc, valid-type]
        @classmethod
        def configuration_problems(cls, options: Any) -> list[str]:
            return []

        def fetch_statement(self, day: date) -> Any:
            from payments.gateways.base import StatementFile

            path = Path(self.options["bench_files"][day.isoformat()])
            return StatementFile(day=day, filename=path.name, opener=lambda: open(path, "rb"))  # noqa: SIM115

    BenchGateway.__name__ = BenchGateway.__qualname__ = f"Bench{base.__name__}"
    return BenchGateway


def _bench_alipay() -> type:
    from payments.gateways.alipay import AlipayGateway

    return bench_gateway(AlipayGateway)


def _bench_wechatpay() -> type:
    from payments.gateways.wechatpay import WechatPayGateway

    return bench_gateway(WechatPayGateway)


BENCH_CLASSES: dict[str, Callable[[], type]] = {"alipay": _bench_alipay, "wechatpay": _bench_wechatpay}


def use_bench_gateways(files: dict[str, dict[str, str]], bills_dir: str) -> None:
    """Point the settings at the bench adapters and a bills folder of the run's own."""
    from django.conf import settings

    from payments.gateways import reset_gateway_cache

    settings.PAYMENT_GATEWAYS = list(files)
    settings.GATEWAY_CLASSES = {**settings.GATEWAY_CLASSES, **{code: f"bench.reconcile.{_class_name(code)}"
                                                               for code in files}}
    settings.GATEWAY_OPTIONS = {
        "alipay": {"seller_id": SELLER_ID, "bench_files": files.get("alipay", {})},
        "wechatpay": {"mchid": MCHID, "bench_files": files.get("wechatpay", {})},
    }
    settings.STORAGES = {**settings.STORAGES, "bills": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": bills_dir}}}
    reset_gateway_cache()


def _class_name(code: str) -> str:
    return {"alipay": "BenchAlipayGateway", "wechatpay": "BenchWechatPayGateway"}[code]


def __getattr__(name: str) -> type:
    # import_string("bench.reconcile.BenchAlipayGateway") builds the class on first use.
    for code, factory in BENCH_CLASSES.items():
        if name == _class_name(code):
            return factory()
    raise AttributeError(name)


# -- the data --------------------------------------------------------------------------


@dataclass
class Plan:
    gateway: str
    day: str
    lines: int
    bill_path: str
    raw_path: str
    planted: dict[str, int]
    bill_bytes: int = 0


def _amount(number: int) -> int:
    return 100 + (number * 7919) % 99_901


def _planted_numbers(lines: int, count: int, first: int) -> set[int]:
    """`count` payment numbers spread over 1..lines; an even step keeps them all odd or all even."""
    step = max(lines // count // 2 * 2, 2)
    return {first + index * step for index in range(count)}


def plant(lines: int) -> dict[str, int]:
    """The planted counts: the issue's 333/333/334 per million, at least a few each."""
    scale = lines / 1_000_000
    return {kind: max(3, round(count * scale)) for kind, count in PLANTED.items()}


def generate_local(gateway: str, day: date, lines: int, shopper_id: int) -> None:
    """`lines` orders and their succeeded payments of `day`, written by the database itself."""
    from django.db import connection

    prefix = f"{PREFIX[gateway]}{day:%Y%m%d}"
    start = f"{day.isoformat()} 00:00:00+08"
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO orders_order (order_no, shopper_id, status, total_minor, currency, consignee_name,
                                      consignee_phone, consignee_address, address_province, address_city,
                                      address_district, address_street, address_postal_code, language,
                                      shipping_carrier, tracking_number, created_at, updated_at, expires_at, paid_at)
            SELECT %s || lpad(g::text, 9, '0'), %s, 'paid', 100 + (g::bigint * 7919) %% 99901, 'CNY', 'Bench',
                   '13800138000', 'Bench road', '', '', '', '', '', '', '', '', t, t, t + interval '30 minutes', t
              FROM (SELECT g, %s::timestamptz + ((g - 1) * {SPREAD_SECONDS}.0 / %s) * interval '1 second' AS t
                      FROM generate_series(1, %s) g) s
        """, [prefix, shopper_id, start, lines, lines])
        cursor.execute("""
            INSERT INTO payments_payment (order_id, attempt_no, gateway, method, out_trade_no, amount_minor, currency,
                                          status, gateway_trade_no, gateway_status, expires_at, paid_at, qr_content,
                                          query_count, refund_required, requested_at, created_at, updated_at)
            SELECT o.id, 1, %s, 'qr', o.order_no || 'P01', o.total_minor, 'CNY', 'succeeded', 'T' || o.order_no,
                   'succeeded', o.expires_at, o.paid_at, '', 0, '', o.created_at, o.created_at, o.created_at
              FROM orders_order o WHERE o.order_no LIKE %s
        """, [gateway, prefix + "%"])
        cursor.execute("ANALYZE orders_order")
        cursor.execute("ANALYZE payments_payment")


def write_bill(gateway: str, day: date, lines: int, directory: Path) -> Plan:
    """The bill in the gateway's real format, plus the same lines as plain CSV for the raw baseline."""
    planted = plant(lines)
    # Odd numbers are left out of the bill, even ones billed at another amount.
    missing_at_gateway = _planted_numbers(lines, planted["missing_at_gateway"], 1)
    mismatched = _planted_numbers(lines, planted["amount_mismatch"], 2)
    def rows() -> Iterator[tuple[str, str, int, str]]:
        return _rows(gateway, day, lines, missing_at_gateway, mismatched, planted["missing_here"])

    raw_path = directory / f"{gateway}-{lines}-raw.csv"
    count = 0
    with open(raw_path, "w", newline="") as raw:
        writer = csv.writer(raw)
        # The same lines, as the normalised columns reconciliation stores.
        for out_trade_no, trade_no, amount, moment in rows():
            count += 1
            writer.writerow((count, "payment", out_trade_no, "", trade_no, "", amount, 0, "CNY",
                             f"{moment}+08", "SUCCESS" if gateway == "wechatpay" else ""))
    writer_for = write_alipay if gateway == "alipay" else write_wechatpay
    bill_path = writer_for(day, rows(), directory / f"{gateway}-{lines}")
    return Plan(gateway=gateway, day=day.isoformat(), lines=count, bill_path=str(bill_path),
                raw_path=str(raw_path), planted=planted, bill_bytes=bill_path.stat().st_size)


def _rows(gateway: str, day: date, lines: int, missing: set[int], mismatched: set[int],
          strangers: int) -> Iterator[tuple[str, str, int, str]]:
    """(out_trade_no, gateway trade number, amount, Beijing time) of every bill line."""
    prefix = f"{PREFIX[gateway]}{day:%Y%m%d}"
    midnight = datetime(day.year, day.month, day.day)
    for number in range(1, lines + 1):
        if number in missing:
            continue
        moment = (midnight + timedelta(seconds=int((number - 1) * SPREAD_SECONDS / lines))).strftime(
            "%Y-%m-%d %H:%M:%S")
        amount = _amount(number) + (1 if number in mismatched else 0)
        yield f"{prefix}{number:09d}P01", f"4200{day:%Y%m%d}{number:014d}", amount, moment
    for index in range(strangers):
        yield f"X{prefix}{index:09d}", f"4299{day:%Y%m%d}{index:014d}", 4200, f"{day.isoformat()} 12:00:00"


def _yuan(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


class _GbkName(zipfile.ZipInfo):
    """Alipay writes entry names in GBK without the UTF-8 flag."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (zipfile's name)
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def write_alipay(day: date, rows: Iterator[tuple[str, str, int, str]], stem: Path) -> Path:
    account = SELLER_ID + "0156"
    path = stem.with_name(f"{account}_{day:%Y%m%d}.csv.zip")
    total = count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        info = _GbkName(f"{account}_{day:%Y%m%d}_业务明细.csv", date_time=(2026, 12, 1, 5, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as entry:
            text = io.TextIOWrapper(entry, encoding="gbk", newline="")
            text.write("#支付宝业务明细查询\r\n")
            text.write(f"#账号：[{account}]\r\n")
            text.write(f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   终止日期：[{day + timedelta(days=1):%Y年%m月%d日} 00:00:00]\r\n")
            text.write("#-----------------------------------------业务明细列表----------------------------------------\r\n")
            text.write(",".join(ALIPAY_COLUMNS) + "\r\n")
            for out_trade_no, trade_no, amount, moment in rows:
                yuan = _yuan(amount)
                total += amount
                count += 1
                text.write(f"{trade_no}\t,{out_trade_no}\t,交易,龙井茶,{moment},{moment},,,,,san***@bench.test,"
                           f"{yuan},{yuan},0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,0.00,0.00,\r\n")
            text.write("#-----------------------------------------业务明细列表结束------------------------------------\r\n")
            text.write(f"#交易合计：{count}笔，商家实收共{_yuan(total)}元，商家优惠共0.00元\r\n")
            text.write("#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元\r\n")
            text.write("#导出时间：[2026年12月01日 05:00:00]\r\n")
            text.flush()
            text.detach()
    return path


def write_wechatpay(day: date, rows: Iterator[tuple[str, str, int, str]], stem: Path) -> Path:
    path = stem.with_name(f"wechatpay_tradebill_{day:%Y%m%d}_ALL.csv.gz")
    total = fees = count = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) as text:
        text.write("\ufeff" + ",".join(WECHAT_COLUMNS) + "\r\n")
        for out_trade_no, trade_no, amount, moment in rows:
            yuan = _yuan(amount)
            fee = amount * 6  # 0.6% in units of 0.00001 yuan
            total += amount
            fees += fee
            count += 1
            text.write(f"`{moment},`{APPID},`{MCHID},`0,`,`{trade_no},`{out_trade_no},`oBenchPayer,`NATIVE,`SUCCESS,"
                       f"`OTHERS,`CNY,`{yuan},`0.00,`0,`0,`0.00,`0.00,`,`,`龙井茶,`,`{fee // 100000}.{fee % 100000:05d},"
                       f"`0.60%,`{yuan},`0.00,`\r\n")
        text.write(",".join(WECHAT_SUMMARY) + "\r\n")
        text.write(f"`{count},`{_yuan(total)},`0.00,`0.00,`{fees // 100000}.{fees % 100000:05d},`{_yuan(total)},"
                   "`0.00\r\n")
    return path


# -- the two measurements ------------------------------------------------------------


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float = 0.0
    # CPU time of this process (the database server's is not in it).
    cpu_seconds: float = 0.0
    found: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


def measure_reconcile(plan: Plan, files: dict[str, dict[str, str]], bills_dir: str) -> Measure:
    """Reconcile the planted day end to end (run in a process of its own by run_bench)."""
    from django.db.models import Count

    from reconciliation.models import Discrepancy
    from reconciliation.services import statement_reconcile
    from reconciliation.services import statements as statement_services
    from shop.actors import Actor

    use_bench_gateways(files, bills_dir)
    phases: dict[str, float] = {}
    originals = {name: getattr(statement_services, name)
                 for name in ("lines_replace", "statement_match_lines", "discrepancies_record", "_keep")}
    for name, original in originals.items():
        setattr(statement_services, name, _timed(original, name, phases))
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        run = statement_reconcile(gateway_code=plan.gateway, day=date.fromisoformat(plan.day),
                                  actor=Actor.system("bench"), now=datetime.fromisoformat(MORNING_AFTER) + timedelta(
                                      days=(date.fromisoformat(plan.day) - DAY).days))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        for name, original in originals.items():
            setattr(statement_services, name, original)
    if run.outcome != "matched":
        raise SystemExit(f"the bench day did not match: {run.outcome} {run.detail}")
    found = dict(Discrepancy.objects.filter(statement_id=run.statement_id).values("kind").annotate(
        n=Count("pk")).values_list("kind", "n"))
    # The load includes the parse: it consumes the parser's lines as they come.
    return Measure(seconds=seconds, peak_rss_mb=_peak_rss_mb(), cpu_seconds=cpu_seconds, found=found,
                   phases=phases)


def _timed(function: Callable[..., Any], name: str, phases: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
            if os.environ.get("BENCH_RSS"):
                print(f"{name}: rss {_peak_rss_mb():.0f} MB", file=sys.stderr)

    return timed


def measure_raw(plan: Plan) -> Measure:
    """COPY the lines, already normalised to CSV, into a temporary table; FULL OUTER JOIN them with the payments."""
    from django.db import connection, transaction

    from reconciliation.services.matching import MATCH_WORK_MEM

    start = f"{plan.day} 00:00:00+08"
    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        # The same columns the line table holds, and the same session memory the match gets.
        cursor.execute(f"SET LOCAL work_mem = '{MATCH_WORK_MEM}'")
        cursor.execute("""CREATE TEMPORARY TABLE raw_bill (line_no integer, kind text, out_trade_no text,
                          out_refund_no text, gateway_trade_no text, gateway_refund_id text, amount_minor bigint,
                          fee_minor bigint, currency text, occurred_at timestamptz, bill_status text) ON COMMIT DROP""")
        with cursor.cursor.copy("COPY raw_bill FROM STDIN (FORMAT csv)") as copy, open(plan.raw_path, "rb") as raw:
            while chunk := raw.read(1 << 20):
                copy.write(chunk)
        cursor.execute("""
            SELECT count(*) FILTER (WHERE p.id IS NULL), count(*) FILTER (WHERE b.out_trade_no IS NULL),
                   count(*) FILTER (WHERE b.amount_minor <> p.amount_minor)
              FROM raw_bill b
              FULL OUTER JOIN (SELECT id, out_trade_no, amount_minor FROM payments_payment
                                WHERE gateway = %s AND status = 'succeeded'
                                  AND paid_at >= %s::timestamptz AND paid_at < %s::timestamptz + interval '1 day') p
                ON p.out_trade_no = b.out_trade_no
        """, [plan.gateway, start, start])
        missing_here, missing_at_gateway, amount_mismatch = cursor.fetchone()
        seconds = time.perf_counter() - started
    return Measure(seconds=seconds, found={"missing_here": missing_here, "missing_at_gateway": missing_at_gateway,
                                           "amount_mismatch": amount_mismatch})


def _peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM): getrusage's ru_maxrss would carry over
    the parent's peak across exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- orchestration --------------------------------------------------------------------


@dataclass
class Result:
    gateway: str
    lines: int
    bill_mb: float
    reconcile: Measure
    raw: Measure
    planted: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.reconcile.seconds / self.raw.seconds

    @property
    def exact(self) -> bool:
        return self.reconcile.found == self.planted

    def line(self) -> str:
        phases = ", ".join(f"{name.strip('_')} {seconds:.2f}s" for name, seconds in self.reconcile.phases.items())
        return (f"{self.gateway:<10} {self.lines:>9,} lines ({self.bill_mb:6.1f} MB bill): reconcile "
                f"{self.reconcile.seconds:6.2f}s ({self.reconcile.cpu_seconds:.2f}s CPU in Python), "
                f"raw COPY + FULL OUTER JOIN {self.raw.seconds:5.2f}s, "
                f"ratio {self.ratio:4.2f}x, peak RSS {self.reconcile.peak_rss_mb:5.0f} MB, "
                f"found {'exactly the planted' if self.exact else 'NOT the planted'} {self.reconcile.found} "
                f"[{phases}]")


def run_bench(*, lines: int, gateways: list[str], linear: int = 0, isolate: bool = True,
              workdir: Path | None = None, report: Callable[[str], None] = print) -> list[Result]:
    """Plant, reconcile, measure the raw baseline; the database is the current default (set up by the caller)."""
    from django.contrib.auth import get_user_model

    work = Path(workdir or tempfile.mkdtemp(prefix="bench-reconcile-"))
    bills_dir = str(work / "bills")
    shopper, _ = get_user_model().objects.get_or_create(username="bench-shopper")
    sizes = [(gateway, lines, DAY) for gateway in gateways]
    if linear:
        sizes.append((gateways[0], lines * linear, DAY + timedelta(days=1)))
    plans: list[Plan] = []
    for gateway, size, day in sizes:
        report(f"planting {size:,} payments and a {gateway} bill of {day.isoformat()}…")
        generate_local(gateway, day, size, shopper.pk)
        plans.append(write_bill(gateway, day, size, work))
    files: dict[str, dict[str, str]] = {}
    for plan in plans:
        files.setdefault(plan.gateway, {})[plan.day] = plan.bill_path
    results = []
    for plan in plans:
        raw_before = _measure(plan, files, bills_dir, "raw", isolate)
        reconciled = _measure(plan, files, bills_dir, "reconcile", isolate)
        raw_after = _measure(plan, files, bills_dir, "raw", isolate)
        raw = min((raw_before, raw_after), key=lambda measure: measure.seconds)
        if raw.found != plan.planted:
            raise SystemExit(f"the raw join disagrees with the plan: {raw.found} != {plan.planted}")
        result = Result(gateway=plan.gateway, lines=plan.lines, bill_mb=plan.bill_bytes / 1e6,
                        reconcile=reconciled, raw=raw, planted=plan.planted)
        report(result.line())
        results.append(result)
    return results


def _measure(plan: Plan, files: dict[str, dict[str, str]], bills_dir: str, what: str, isolate: bool) -> Measure:
    if not isolate:
        return measure_reconcile(plan, files, bills_dir) if what == "reconcile" else measure_raw(plan)
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", what, "--plan", json.dumps(asdict(plan)),
            "--files", json.dumps(files), "--bills-dir", bills_dir]
    finished = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=ROOT)
    if finished.returncode:
        raise SystemExit(f"measuring {what} failed (exit {finished.returncode}):\n{finished.stderr[-4000:]}")
    return Measure(**json.loads(finished.stdout.strip().splitlines()[-1]))


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import logging

    logging.getLogger().setLevel(logging.WARNING)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--gateways", default="alipay,wechatpay")
    parser.add_argument("--linear", type=int, default=0, help="also reconcile a bill this many times larger")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--measure", choices=["reconcile", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--bills-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        # A child: DATABASE_URL already names the bench database.
        _setup_django()
        plan = Plan(**json.loads(args.plan))
        measured = (measure_reconcile(plan, json.loads(args.files), args.bills_dir) if args.measure == "reconcile"
                    else measure_raw(plan))
        print(json.dumps(asdict(measured)))
        return 0
    url = bench_database_url("bench")
    os.environ["DATABASE_URL"] = url
    database_recreate(url)
    try:
        _setup_django()
        from django.core.management import call_command

        print(f"migrating {url.rpartition('/')[2]}…")
        call_command("migrate", verbosity=0)
        results = run_bench(lines=args.lines, gateways=args.gateways.split(","), linear=args.linear)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            database_drop(url)
    print()
    print("Goal: reconcile at most 3x the raw COPY + FULL OUTER JOIN, peak RSS under 500 MB, exactly the planted found.")
    for result in results:
        verdict = "ok" if result.ratio <= 3 and result.reconcile.peak_rss_mb < 500 and result.exact else "MISSED"
        print(f"  {verdict:6} {result.gateway} {result.lines:,}: {result.ratio:.2f}x, "
              f"{result.reconcile.peak_rss_mb:.0f} MB, {'exact' if result.exact else result.reconcile.found}")
    if args.linear:
        small = next(result for result in results if result.gateway == results[-1].gateway)
        big = results[-1]
        print(f"  linear: {big.lines:,} lines took {big.reconcile.seconds / small.reconcile.seconds:.2f}x as long as "
              f"{small.lines:,} ({big.lines / small.lines:.0f}x the lines)")
    print(f"  load average during the run: {' '.join(f'{value:.2f}' for value in os.getloadavg())} "
          f"on {os.cpu_count()} cores (other work on the machine inflates the wall-clock figures)")
    return 0 if all(result.exact for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
