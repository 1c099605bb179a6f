"""pyproject.toml, environment.yml, Makefile, CI script and README agree with each other."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, 1)[0].lower()


def test_environment_yml_matches_pyproject():
    pp = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pp["project"]["dependencies"] + pp["project"]["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = [p for p in pip if not p.startswith("-e")]
    assert {(_name(d), d.replace(" ", "")) for d in deps} == {(_name(d), d.replace(" ", "")) for d in pip}


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make book" in readme


def test_makefile_targets_exist_and_point_at_real_things():
    mk = (ROOT / "Makefile").read_text()
    for target in ("book:", "test:", "chapter:", "bench:", "install:"):
        assert re.search(rf"^{target}", mk, re.M), target
    assert (ROOT / "benchmarks" / "run.py").exists()
    assert (ROOT / "tests").is_dir()


def test_readme_explains_every_dependency():
    pp = tomllib.loads((ROOT / "pyproject.toml").read_text())
    readme = (ROOT / "README.md").read_text().lower()
    deps = pp["project"]["dependencies"] + pp["project"]["optional-dependencies"]["dev"]
    missing = [_name(d) for d in deps if _name(d) not in readme]
    assert not missing, f"README does not say why these dependencies are there: {missing}"
