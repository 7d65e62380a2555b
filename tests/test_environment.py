"""One set of versions: the pinned requirement files, environment.yml, the lock and pyproject's ranges agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


def _requirements(name: str = "requirements.txt") -> dict[str, str]:
    return _pins((ROOT / name).read_text().splitlines())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _ranges(specs: list[str]) -> dict[str, Requirement]:
    return {Requirement(s).name.lower().replace("_", "-"): Requirement(s) for s in specs}


DEV_TOOLS = ("pytest", "pytest-xdist", "nbval", "playwright", "ruff", "hypothesis")


def _environment_yml() -> dict:
    import yaml  # PyYAML comes with JupyterLab (jupyter-events)

    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_every_requirement_is_pinned_and_torch_is_the_cpu_build():
    reqs = _requirements()
    assert reqs["torch"] == "2.13.0"
    for name in ("jupyterlab", "numpy", "matplotlib", "ipywidgets", "nbclient", "tqdm"):
        assert name in reqs, f"{name} must be pinned in requirements.txt"


def test_runtime_and_dev_requirements_are_apart():
    runtime, dev = _requirements(), _requirements("requirements-dev.txt")
    assert set(DEV_TOOLS) <= set(dev), f"requirements-dev.txt lacks {set(DEV_TOOLS) - set(dev)}"
    assert not set(DEV_TOOLS) & set(runtime), "test tools belong in requirements-dev.txt"
    assert not set(runtime) & set(dev), "a package is listed in both requirement files"


def test_environment_yml_matches_requirements():
    env = _environment_yml()
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert _pins(pip) == _requirements(), "environment.yml's pip section must list exactly requirements.txt"
    assert any(c.startswith("python=3.1") for c in conda) and "pip" in conda
    assert env["name"] == "tfmcourse"


def test_constraints_lock_agrees_with_both_requirement_files():
    lock = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in {**_requirements(), **_requirements("requirements-dev.txt")}.items():
        assert lock.get(name) == version, (
            f"constraints.txt pins {name}=={lock.get(name)}, requirements {version}"
        )
    assert lock["torch"] == "2.13.0"


@pytest.mark.parametrize(
    "specs, pinned",
    [
        (lambda p: p["project"]["dependencies"], "requirements.txt"),
        (lambda p: p["project"]["optional-dependencies"]["dev"], "requirements-dev.txt"),
    ],
    ids=["dependencies", "dev"],
)
def test_pyproject_states_compatible_ranges_that_hold_the_pinned_versions(specs, pinned):
    ranges, pins = _ranges(specs(_pyproject())), _requirements(pinned)
    assert set(ranges) == set(pins), f"pyproject and {pinned} name different packages"
    for name, req in ranges.items():
        assert "==" not in str(req.specifier), f"{req}: a range, not a pin (the pin is in {pinned})"
        assert "<" in str(req.specifier), f"{req}: give an upper bound (the next major version)"
        assert req.specifier.contains(pins[name]), f"{req} excludes the tested {name}=={pins[name]}"


def test_pyproject_requires_the_python_the_code_uses():
    project = _pyproject()["project"]
    assert project["requires-python"] == ">=3.11"  # tomllib, used by these tests, is 3.11+
    assert "dynamic" not in project or "dependencies" not in project["dynamic"]
    assert project["scripts"]["tfmcourse"] == "tfmcourse.cli:main"
    assert _pyproject()["tool"]["ruff"]["target-version"] == "py311"


def test_no_other_requirements_file_pins_a_different_torch():
    for path in ROOT.rglob("*requirements*.txt"):
        if ".venv" in path.parts:
            continue
        for line in path.read_text().splitlines():
            if re.match(r"^\s*torch\b", line):
                assert line.strip().startswith("torch==2.13.0"), f"{path}: {line}"
