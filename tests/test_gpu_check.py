"""``make gpu-check`` (benchmarks/gpu_check.py), the parts a CPU machine can test: the clean skip
without CUDA, the smoke-table comparison with its per-table tolerances, and the report writing."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


gc = _load("gpu_check")


def test_skips_cleanly_without_cuda(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nold table\n")
    env = dict(os.environ, REPRO_GPU_CHECK_NO_CUDA="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(SCRIPT), "--results-md", str(md), "--json", str(tmp_path / "g.json")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "no CUDA device: skipped" in r.stdout and "REPRO_GPU_CHECK_NO_CUDA=1" in r.stdout
    assert md.read_text() == "# Benchmark results\n\nold table\n" and not (tmp_path / "g.json").exists()
    bad = subprocess.run([sys.executable, str(SCRIPT), "--only", "smoke,warp"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "unknown step" in bad.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_runs_the_script(tmp_path):
    env = dict(os.environ, REPRO_GPU_CHECK_NO_CUDA="1", OMP_NUM_THREADS="1")
    r = subprocess.run(["make", "--no-print-directory", "-n", "gpu-check"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "benchmarks/gpu_check.py" in r.stdout, r.stdout + r.stderr


def _frames():
    cpu = pd.DataFrame({"model": ["a", "b"], "n_params": [17952, 3616], "val_acc": [83.11, 84.19],
                        "sec_per_step": [0.1, 0.2], "rho": [0.05, 0.1]})
    return cpu, cpu.copy()


def test_default_rule_tolerances():
    rule = gc.rule_for("ch6/table1_analogue.csv")
    assert rule.pattern == "*" and rule.rtol == 1e-3
    cpu, gpu = _frames()
    gpu["val_acc"] = gpu["val_acc"] * (1 + 5e-4)  # within 1e-3 relative
    gpu["sec_per_step"] = [0.01, 0.5]  # a device property: not compared
    res = gc.compare_frames(cpu, gpu, rule, "ch6/x.csv")
    assert res["passed"], res["mismatches"]
    assert res["skipped_columns"] == ["sec_per_step"] and res["cells"] == 8
    gpu["val_acc"] = cpu["val_acc"] * (1 + 3e-3)  # a tolerance failure
    res = gc.compare_frames(cpu, gpu, rule, "ch6/x.csv")
    assert not res["passed"] and res["n_mismatches"] == 2 and "'val_acc'" in res["mismatches"][0]
    cpu, gpu = _frames()
    gpu.loc[1, "n_params"] = 3617  # a count is exact, though 1 in 3616 is within 1e-3
    res = gc.compare_frames(cpu, gpu, rule)
    assert not res["passed"] and "count differs" in res["mismatches"][0]
    cpu, gpu = _frames()
    gpu.loc[0, "model"] = "c"
    assert "text differs" in gc.compare_frames(cpu, gpu, rule)["mismatches"][0]
    assert "row count" in gc.compare_frames(cpu, gpu.iloc[:1], rule)["mismatches"][0]
    assert "columns differ" in gc.compare_frames(cpu, gpu.drop(columns="rho"), rule)["mismatches"][0]


def test_claims_rule_text_numbers_and_verdicts():
    rule = gc.rule_for("ch6/claims.csv")
    assert rule.pattern == "*/claims.csv"
    base = dict(claim=["SAM-ON beats SAM-all"], paper=["WRN-28: SAM 83.11 vs ON 84.19"],
                reproduced=["ON > all for 1/1 variants, mean gap +3.00 pts"], verdict=["reproduced"],
                section=["Accuracy"])
    cpu = pd.DataFrame(base)
    ok = pd.DataFrame(dict(base, reproduced=["ON > all for 1/1 variants, mean gap +3.01 pts"]))  # last digit
    assert gc.compare_frames(cpu, ok, rule)["passed"]
    assert "section" not in gc.compare_frames(cpu, ok, rule)["skipped_columns"]
    far = pd.DataFrame(dict(base, reproduced=["ON > all for 1/1 variants, mean gap +3.20 pts"]))
    assert "number in text differs" in gc.compare_frames(cpu, far, rule)["mismatches"][0]
    count = pd.DataFrame(dict(base, reproduced=["ON > all for 0/1 variants, mean gap +3.00 pts"]))
    assert "count in text differs" in gc.compare_frames(cpu, count, rule)["mismatches"][0]
    flip = pd.DataFrame(dict(base, verdict=["not reproduced"]))
    assert "'verdict'" in gc.compare_frames(cpu, flip, rule)["mismatches"][0]


def test_compare_dirs_pairs_every_table(tmp_path):
    cpu_d, gpu_d = tmp_path / "cpu", tmp_path / "cuda"
    for d in (cpu_d / "ch6", gpu_d / "ch6"):
        d.mkdir(parents=True)
    cpu, gpu = _frames()
    cpu.to_csv(cpu_d / "ch6" / "t.csv", index=False)
    gpu.to_csv(gpu_d / "ch6" / "t.csv", index=False)
    cpu.to_csv(cpu_d / "ch6" / "only_cpu.csv", index=False)
    gpu.to_csv(gpu_d / "ch6" / "only_gpu.csv", index=False)
    rows = {r["table"]: r for r in gc.compare_dirs(cpu_d, gpu_d)}
    assert rows["ch6/t.csv"]["passed"]
    assert rows["ch6/only_cpu.csv"]["mismatches"] == ["missing from the CUDA run"]
    assert rows["ch6/only_gpu.csv"]["mismatches"] == ["written by the CUDA run only"]


def test_report_appends_gpu_section_and_json(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n| cpu table |\n")
    cpu, gpu = _frames()
    gpu["val_acc"] = cpu["val_acc"] * 1.01
    tables = [gc.compare_frames(cpu, gpu, gc.rule_for("ch6/t.csv"), "ch6/t.csv")]
    rows = [dict(step="sam", benchmark="sam step time (wrn28_10)", metric="SAM-ON runtime mode / SAM-all step time",
                 value=0.05, reference="SAM-all step", ratio=0.8, target="<= 0.85", passed=True)]
    rows += gc.smoke_rows({"ch6": (0, "", 9.0)}, {"ch6": (0, "", 7.0)}, tables)
    result = dict(device="NVIDIA H100 80GB HBM3", date="2026-01-01 00:00 UTC", machine="test", wall_s=300.0,
                  budget_s=480.0, passed=all(r["passed"] for r in rows), rows=rows, tables=tables, errors={},
                  rules=[gc.asdict(r) for r in gc.RULES])
    gc.write_report(result, tmp_path / "g.json", md)
    text = md.read_text()
    assert text.startswith("# Benchmark results\n\n| cpu table |\n")  # the CPU table is kept
    assert "## GPU: NVIDIA H100 80GB HBM3" in text and "SOME CHECKS FAILED" in text
    assert "| sam | sam step time (wrn28_10) |" in text and "0 of 1 equal" in text and "'val_acc'" in text
    assert "`*/claims.csv`" in text  # every tolerance rule is stated with its reason
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["device"] == "NVIDIA H100 80GB HBM3" and data["tables"][0]["passed"] is False
    # `make bench` rewrites the CPU table but keeps the appended GPU section
    run = _load("run")
    assert run.kept_sections(text).startswith("## GPU: NVIDIA H100")
    assert run.kept_sections("# x\n\n## Benchmarks that failed to run\n\nboom\n") == ""
