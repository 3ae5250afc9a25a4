"""docs/grafana-dashboard.json reads only metrics that `/metrics` serves: every metric name in
its queries is a sample name of a family in a real scrape, so a renamed or removed metric
fails here instead of leaving an empty panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import METRICS_TOKEN
from tests.support import AppHarness

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
# Suffixes of a family's samples in the text format, by type.
SAMPLES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}
# PromQL words that look like metric names but are not (functions, aggregations, keywords).
PROMQL = {
    "sum", "max", "min", "avg", "count", "topk", "by", "without", "rate", "increase",
    "histogram_quantile", "label_values", "le", "instance",
}  # fmt: skip
# A name with no `(` after it, not inside {…} label matchers or "…" strings.
NAME = re.compile(r"(?<![\w\"$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(\"])")


def queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def metric_names(expr: str) -> set[str]:
    # Drop label matchers, strings and range selectors before looking for names.
    bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", expr)
    bare = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"label_values\(\s*([\w:]+)\s*,[^)]*\)", r"\1", bare)
    return {name for name in NAME.findall(bare) if name not in PROMQL and not name[0].isdigit()}


def test_the_dashboard_is_grafana_json_with_panels_and_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "CampBot"
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 30
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    # Every metric of the list is charted.
    used = set().union(*(metric_names(q) for q in queries(dashboard)))
    for name in (
        "campbot_callbacks_total",
        "campbot_inbox_pending",
        "campbot_inbox_oldest_pending_seconds",
        "campbot_handler_runs_total",
        "campbot_handler_duration_seconds_bucket",
        "campbot_outbox_rows",
        "campbot_sends_total",
        "campbot_rate_limit_waits_total",
        "campbot_mass_send_quota_used",
        "campbot_scheduler_lateness_seconds_bucket",
        "campbot_scheduler_leader",
        "campbot_wecom_token_refreshes_total",
    ):
        assert name in used, name


async def test_every_metric_the_dashboard_queries_is_served(metered: AppHarness) -> None:
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = await metered.client.get("/metrics", headers=auth)
    assert response.status_code == 200
    served: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        served.update(family.name + suffix for suffix in SAMPLES[family.type])
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(q) for q in queries(dashboard)))
    assert used
    assert used <= served, sorted(used - served)
