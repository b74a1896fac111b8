"""The Grafana dashboard and the Prometheus alerting rules in deploy/ against the server they
watch: promtool checks the rules and runs their unit tests, every dashboard query is valid
PromQL, and every metric a panel or an alert names is one the server exports, read from the
/metrics of a server built for the test (with the suffix its type gives the samples: a
counter's ``_total``, a histogram's ``_bucket``, ``_sum`` and ``_count``). A panel naming a
metric that does not exist, or a histogram suffix on a counter, fails here.

Every metric is declared when the server starts, so its HELP and TYPE lines are in the
exposition even before anything is counted. To add a panel for a metric the server gained,
add the panel to the dashboard and, if it is on the plan's list, its line to ``REQUIRED``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from radcase_pacs.app import create_app
from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings
from tests.backends import unavailable

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "radcase-pacs.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"

# Series Prometheus writes itself for every target it scrapes.
PROMETHEUS_OWN = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)

# What the dashboard must show, each topic by a metric one of its panels queries.
REQUIRED = {
    "request rate and errors per route": "radcase_http_requests_total",
    "latency per route": "radcase_http_request_duration_seconds_bucket",
    "cache hit rate": "radcase_cache_requests_total",
    "ingest rate and failures": "radcase_ingests_total",
    "DIMSE associations by outcome": "radcase_dimse_associations_total",
    "open DIMSE associations": "radcase_dimse_open_associations",
    "database pool saturation": "radcase_db_pool_max_connections",
    "database pool waits": "radcase_db_pool_waiting_requests",
    "S3 errors": "radcase_store_errors_total",
    "read replica lag": "radcase_index_replica_lag_seconds",
    "reads by primary or replica": "radcase_index_reads_total",
    "audit write failures": "radcase_audit_writes_total",
    "targets up": "up",
}

SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}

# Grafana's variables, substituted as Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": ".*",
}


# -- reading metric names out of PromQL ---------------------------------------------------

STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
RANGE = re.compile(r"\[[^\]]*\]")
MATCHERS = re.compile(r"\{[^{}]*\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
OFFSET = re.compile(r"\boffset\s+-?\w+")
AT = re.compile(r"@\s*[\w.]+(?:\(\))?")
NUMBER = re.compile(r"\b(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\b")
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left"}
    | {"group_right", "offset", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """The metric (sample) names a PromQL expression selects: what is left once strings,
    label matchers, ranges, grouping label lists, modifiers and numbers are taken out, less
    function and aggregation names (a name followed by a parenthesis) and keywords."""
    names = set(NAME_MATCHER.findall(expr))
    text = STRING.sub(" ", expr)
    for pattern in (VARIABLE, RANGE, MATCHERS, GROUPING, OFFSET, AT, NUMBER):
        text = pattern.sub(" ", text)
    for match in IDENTIFIER.finditer(text):
        called = text[match.end() :].lstrip().startswith("(")
        if not called and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def exported_sample_names(exposition: str) -> frozenset[str]:
    """Every sample name the exposition's metric families can carry, by their types."""
    return frozenset(
        family.name + suffix
        for family in text_string_to_metric_families(exposition)
        for suffix in SAMPLE_SUFFIXES[family.type]
    )


def unknown_names(expr: str, exported: frozenset[str]) -> set[str]:
    return metric_names(expr) - exported - PROMETHEUS_OWN


# -- the dashboard and the rules as data --------------------------------------------------


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those folded into collapsed rows included."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    """(variable name, PromQL) for the dashboard's query variables (``label_values(m, l)``
    selects ``m``)."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", text.strip())
        found.append((variable["name"], selector.group(1) if selector else text))
    return found


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def as_prometheus_sees_it(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """The sample names of a server built as ``serve`` builds it (the embedded default)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("monitoring") / "data")
    with open_deployment(settings) as deployment, TestClient(create_app(deployment)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    return exported_sample_names(response.text)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    if executable is None:
        unavailable("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


# -- the name reader itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le, route) (rate(radcase_http_request_duration"
            '_seconds_bucket{job=~"$job",route=~"a|b"}[$__rate_interval])))',
            {"radcase_http_request_duration_seconds_bucket"},
        ),
        (
            'sum(rate(a_total{x="sum(b)"}[5m])) / ignoring(x) group_left(y) c offset 5m'
            " > 1e3 and on (job) up == 0",
            {"a_total", "c", "up"},
        ),
        ('{__name__="d_total", job="x"}', {"d_total"}),
        ('label_replace(foo, "dst", "$1", "src", "(.*)")', {"foo"}),
        ("topk(5, sum without (instance) (rate(e_total[1m] @ end())))", {"e_total"}),
        ('absent(up{job="radcase-pacs"})', {"up"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_sample_names_follow_each_metric_type() -> None:
    exposition = (
        "# HELP c_total a counter\n# TYPE c_total counter\n"
        "# HELP h a histogram\n# TYPE h histogram\n"
        "# HELP g a gauge\n# TYPE g gauge\n"
    )
    names = exported_sample_names(exposition)
    assert {"c_total", "h_bucket", "h_sum", "h_count", "g"} <= names
    for wrong in ("c", "c_bucket", "h", "h_total", "g_total", "g_count"):
        assert wrong not in names


def test_a_panel_naming_a_metric_the_server_lacks_is_caught(exported: frozenset[str]) -> None:
    assert unknown_names('sum(rate(radcase_http_requests_total{job="x"}[5m]))', exported) == set()
    assert unknown_names("radcase_no_such_metric_seconds", exported) == {
        "radcase_no_such_metric_seconds"
    }
    assert unknown_names("rate(radcase_cache_requests_bucket[5m])", exported) == {
        "radcase_cache_requests_bucket"
    }


# -- the dashboard ------------------------------------------------------------------------


def test_every_dashboard_query_names_only_metrics_the_server_exports(
    exported: frozenset[str],
) -> None:
    queries = panel_queries() + variable_queries()
    assert len(queries) > 20
    empty = [title for title, expr in queries if not metric_names(expr)]
    assert not empty, f"queries that select no metric: {empty}"
    unknown = [
        (title, sorted(names))
        for title, expr in queries
        if (names := unknown_names(expr, exported))
    ]
    assert not unknown, f"panels naming metrics the server does not export: {unknown}"


def test_the_dashboard_shows_everything_on_the_plans_list() -> None:
    queried = set().union(*(metric_names(expr) for _, expr in panel_queries()))
    missing = {topic: name for topic, name in REQUIRED.items() if name not in queried}
    assert not missing, f"no panel shows {missing}"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """The queries, with Grafana's variables substituted, as recording rules promtool
    parses (it checks the PromQL of every rule)."""
    rules = [
        {"record": f"dashboard:query:{n}", "expr": as_prometheus_sees_it(expr)}
        for n, (_, expr) in enumerate(panel_queries() + variable_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_panel_reads_the_chosen_prometheus_and_fits_the_grid() -> None:
    loaded = dashboard()
    ids = [panel["id"] for panel in panels(loaded["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert loaded["uid"] == "radcase-pacs"
    for panel in panels(loaded["panels"]):
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel.get("description"), f"{panel['title']} has no description"
        assert panel["targets"], panel["title"]


# -- the alerting rules -------------------------------------------------------------------


def test_promtool_accepts_the_alerting_rules() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_names_only_metrics_the_server_exports(exported: frozenset[str]) -> None:
    unknown = {
        rule["alert"]: sorted(names)
        for rule in alert_rules()
        if (names := unknown_names(rule["expr"], exported))
    }
    assert not unknown, f"alerts naming metrics the server does not export: {unknown}"


def test_every_alert_says_how_long_how_bad_and_what_to_do() -> None:
    rules = alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: no for: duration"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        for annotation in ("summary", "description", "action"):
            assert rule["annotations"].get(annotation, "").strip(), f"{name}: no {annotation}"
