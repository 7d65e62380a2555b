"""One set of pinned versions: requirements.txt, environment.yml, constraints.txt and pyproject agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)")


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"not an exact pin: {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _requirements() -> dict[str, str]:
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def _environment_yml() -> dict:
    import yaml  # PyYAML comes with JupyterLab (jupyter-events)

    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_every_requirement_is_pinned_and_torch_is_the_cpu_build():
    reqs = _requirements()
    assert reqs["torch"] == "2.13.0"
    for name in ("jupyterlab", "numpy", "matplotlib", "ipywidgets", "nbval", "pytest", "tqdm"):
        assert name in reqs, f"{name} must be pinned in requirements.txt"


def test_environment_yml_matches_requirements():
    env = _environment_yml()
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert _pins(pip) == _requirements(), "environment.yml's pip section must list exactly requirements.txt"
    assert any(c.startswith("python=3.1") for c in conda) and "pip" in conda
    assert env["name"] == "tfmcourse"


def test_constraints_lock_agrees_with_requirements():
    lock = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in _requirements().items():
        assert lock.get(name) == version, (
            f"constraints.txt pins {name}=={lock.get(name)}, requirements {version}"
        )
    assert lock["torch"] == "2.13.0"


def test_pyproject_takes_dependencies_from_requirements():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" in data["project"]["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert data["project"]["scripts"]["tfmcourse"] == "tfmcourse.cli:main"


def test_no_other_requirements_file_pins_a_different_torch():
    for path in ROOT.rglob("*requirements*.txt"):
        if ".venv" in path.parts:
            continue
        for line in path.read_text().splitlines():
            if re.match(r"^\s*torch\b", line):
                assert line.strip().startswith("torch==2.13.0"), f"{path}: {line}"
