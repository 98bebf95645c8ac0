"""`make bench` in miniature, so that it cannot rot: a few thousand lines per gateway, every planted
discrepancy found and nothing else. Correctness only; no time is asserted."""
import pytest

from bench.reconcile import run_bench
from payments.gateways import reset_gateway_cache

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_bench_finds_exactly_what_it_plants(settings, tmp_path):
    # The bench points the settings at its own adapters: have them restored.
    for name in ("PAYMENT_GATEWAYS", "GATEWAY_CLASSES", "GATEWAY_OPTIONS", "STORAGES"):
        setattr(settings, name, getattr(settings, name))
    reports: list[str] = []
    try:
        results = run_bench(lines=3000, gateways=["alipay", "wechatpay"], linear=2, isolate=False,
                            workdir=tmp_path, report=reports.append)
    finally:
        reset_gateway_cache()

    assert [(result.gateway, result.lines) for result in results] == [
        ("alipay", 3000), ("wechatpay", 3000), ("alipay", 6000)]
    for result in results:
        assert result.exact, result.line()
        assert result.raw.found == result.planted
        assert result.reconcile.seconds > 0 and result.raw.seconds > 0
    assert results[0].planted == {"missing_here": 3, "missing_at_gateway": 3, "amount_mismatch": 3}
    assert any("ratio" in line for line in reports)
