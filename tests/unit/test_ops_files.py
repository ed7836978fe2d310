"""docs/ops: the Grafana dashboard shows exactly the node's metrics; the unit and images are what they say."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from function_node.metrics import NodeMetrics

OPS = Path(__file__).resolve().parents[2] / "docs" / "ops"


def node_metric_names() -> set[str]:
    registry = CollectorRegistry()
    NodeMetrics(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_dashboard_queries_only_and_all_node_metrics() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs for n in re.findall(r"\bfxn_[a-z_]+", e)}
    assert used == node_metric_names()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_systemd_unit_runs_fxn_start_and_reloads_with_sighup() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keep systemd's key case
    unit.read_string((OPS / "fxn-node.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith("/fxn start")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["User"] == "fxn"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_dockerfiles_say_they_were_not_built_here() -> None:
    for name in ("Dockerfile", "Dockerfile.cuda"):
        text = (OPS / name).read_text()
        assert "not built on the project's build machines (no Docker engine there)" in text
        assert 'ENTRYPOINT ["fxn"]' in text and "USER fxn" in text


def _targets() -> list[tuple[dict[str, object], str]]:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    return [(panel, t["expr"]) for panel in dashboard["panels"] for t in panel["targets"]]


def test_dashboard_has_instance_and_model_variables() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "instance", "model"}
    for name, label_query in (("instance", "fxn_requests_total"), ("model", "fxn_upstream_in_flight")):
        query = variables[name]["query"]["query"]
        assert query.startswith(f"label_values({label_query}") and query.endswith(f", {name})")
        assert variables[name]["includeAll"] and variables[name]["multi"]


def test_every_query_is_filtered_by_the_variables() -> None:
    model_metrics = {"fxn_upstream", "fxn_backend_healthy"}
    for panel, expr in _targets():
        selectors = re.findall(r"\b(fxn_[a-z_]+)(\{[^}]*\})?", expr)
        assert selectors, expr
        for metric, labels in selectors:
            assert 'instance=~"$instance"' in labels, (panel["title"], metric)
            if any(metric.startswith(m) for m in model_metrics):
                assert 'model=~"$model"' in labels, (panel["title"], metric)
            if metric.startswith("fxn_request"):
                assert 'route!~"/health|/metrics"' in labels, (panel["title"], metric)
