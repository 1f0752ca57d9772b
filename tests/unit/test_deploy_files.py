"""Docker is not run here, so its files are checked as text: they must parse
and describe the same processes as the Procfile."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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
    assert re.search(r'torch==2\.13\.0', dockerfile)
    assert "whl/cpu" in dockerfile
