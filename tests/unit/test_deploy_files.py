"""Docker and Heroku are not run here, so their files are checked as text:
they must parse, describe the same processes as the Procfile, and install
the CPU build of torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_compose_runs_every_procfile_process_with_the_same_program():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, command in procfile().items():
        assert name in services, f"{name} is in the Procfile but not in docker-compose.yml"
        program = command.split()[:3]
        assert services[name]["command"][: len(program)] == program, name
    for name in ("web", "worker", "beat", "flower"):
        assert services[name]["depends_on"], name
    assert {"postgres", "redis"} <= set(services)


def test_dockerfile_copies_files_that_exist_and_pins_the_cpu_torch():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert re.search(r"torch==2\.13\.0", dockerfile)
    assert "whl/cpu" in dockerfile


def torch_version() -> str:
    """The one torch version every install path pins (the Makefile's)."""
    return re.search(r"^TORCH := torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_heroku_requirements_pin_the_cpu_torch_through_its_index_and_install_the_project():
    lines = requirement_lines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch = [Requirement(line) for line in lines if line.startswith("torch")]
    assert len(torch) == 1 and str(torch[0].specifier) == f"=={torch_version()}+cpu"
    # Only the CPU build matches the pin; the project's own range accepts it.
    pinned = Version(f"{torch_version()}+cpu")
    assert not torch[0].specifier.contains(Version(torch_version()))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(d) for d in project["dependencies"] if d.startswith("torch")]
    assert declared[0].specifier.contains(pinned)
    assert "." in lines  # the project itself, with everything pyproject.toml lists


def test_python_version_file_matches_the_project_and_the_image():
    version = (ROOT / ".python-version").read_text().strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(Version(version))
    assert f"FROM python:{version}-" in (ROOT / "Dockerfile").read_text()


def test_the_local_runner_starts_every_long_running_process_but_not_release():
    """honcho stops every process when one exits, and `release` exits once it
    has migrated: a plain `honcho start` would stop at once."""
    script = (ROOT / "scripts" / "run-local.sh").read_text()
    started = re.search(r"honcho start ([\w ]+)", script).group(1).split()
    assert sorted(started) == sorted(name for name in procfile() if name != "release")
    assert "db upgrade" in script  # what `release` would have done


# deploy/: the Grafana dashboard and the Prometheus scrape config.

# The sample names /metrics gives: each counter and histogram of app/metrics.py
# counted once in a scratch multiprocess directory and read back as the
# /metrics route reads it; the scrape-time gauges by their families' names (a
# gauge's samples carry its family's name). In a process of its own, so the
# counts land in no other test's directory.
_EXPORTED_NAMES = """
import json
from prometheus_client import CollectorRegistry, Counter, multiprocess
from prometheus_client.metrics import MetricWrapperBase
from app import metrics
from app.services import gauges

for metric in vars(metrics).values():
    if isinstance(metric, MetricWrapperBase):
        child = metric.labels(*["x"] * len(metric._labelnames))
        if isinstance(metric, Counter):
            child.inc()
        else:
            child.observe(1)
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
names = {sample.name for family in registry.collect() for sample in family.samples}
gauges.queue_sizes = lambda: {}  # no broker here; the families are yielded all the same
names |= {family.name for family in gauges.ScrapeTimeGauges(per_collection=True).collect()}
print(json.dumps(sorted(names)))
"""


def exported_sample_names(scratch: Path) -> set[str]:
    (scratch / "metrics").mkdir()
    env = {"PATH": "", "QUARRY_VAR_DIR": str(scratch), "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics")}
    out = subprocess.run(
        [sys.executable, "-c", _EXPORTED_NAMES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers, less
    functions, keywords, label lists, label matchers and ranges."""
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", expr):
        before, after = expr[: match.start()], expr[match.end() :].lstrip()
        if before.endswith(("$", ".")) or before[-1:].isdigit() or after.startswith("("):
            continue
        if match.group() not in _PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def dashboard_panels() -> list[dict]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "quarry.json").read_text())
    return [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]


def test_dashboard_queries_only_metrics_the_service_exports(tmp_path):
    assert metric_names(
        'histogram_quantile(0.95, sum by (route, le) (rate(a_bucket{x=~"4.."}[$__rate_interval]))) / max(b) * 60'
    ) == {"a_bucket", "b"}
    exported = exported_sample_names(tmp_path)
    assert {"quarry_http_requests_total", "quarry_job_run_seconds_bucket", "quarry_queue_depth"} <= exported
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "quarry.json").read_text())
    queried = set()
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names and names <= exported, f"{panel['title']}: {sorted(names - exported)} not exported"
            queried |= names
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert set(re.findall(r"label_values\((\w+),", variable["query"]["query"])) <= exported
    # Every metric is on the dashboard (a histogram by its buckets).
    assert {name for name in exported if not name.endswith(("_sum", "_count"))} <= queried


def test_dashboard_takes_its_prometheus_from_a_variable():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "quarry.json").read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        for where in [panel, *panel.get("targets", [])]:
            if panel["type"] != "row":
                assert where["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_prometheus_example_scrapes_metrics_with_the_token_from_a_file():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "quarry"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert all(static["targets"] for static in job["static_configs"])
