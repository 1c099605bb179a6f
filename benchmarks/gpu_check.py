"""One prepared command that proves the CUDA paths on one GPU (issue 18): ``make gpu-check``.

    .venv/bin/python benchmarks/gpu_check.py [--budget-s 480] [--only smoke,features,sam,...]

Without a CUDA device it prints ``no CUDA device: skipped`` and exits 0 (that path is what the
CPU test suite runs, ``tests/test_gpu_check.py``). With one it runs, within ``--budget-s`` seconds:

``smoke``        every book chapter in the smoke profile with ``--device cuda`` and, at the same
                 time, with ``--device cpu`` (separate caches), then compares every CSV of the two
                 runs with the per-table tolerances of :data:`RULES` (the report states each rule);
``features``     :func:`repro.ood.features.extract_uncached` vs a bare ``model(x)`` loop under the same
                 bf16 autocast + channels_last setting, timm ResNet-50 and ViT-B/16 (random init), batch 256;
``sam``          :func:`repro.sam.timing.step_costs` on WRN-28-10, batch 128, bf16 autocast: SAM / SGD,
                 SAM-ON runtime mode / SAM-all (<= 0.85), B3 / SAM-all (<= 0.7);
``sharpness``    worst-case sharpness vs bare forward+backward passes (<= 1.25; ``bench_sharpness.py``);
``unlearning``   one JensUn step vs a bare forward+backward (>= 0.8; ``bench_unlearning.py``);
``distributed``  ``torchrun --nproc_per_node=1`` of ``repro.train_ddp`` (SAM under DDP) and
                 ``repro.unlearn_dist --strategy fsdp``; passes only if the run reports the NCCL backend.

It writes ``gpu_check.json`` (every row, every table comparison) and appends a Markdown section
``## GPU: <device name>`` to ``benchmarks/RESULTS.md``. Exit status: 0 when every check passed (or
no CUDA), 1 otherwise (the report is written either way).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NO_CUDA_ENV = "REPRO_GPU_CHECK_NO_CUDA"  # "1": behave as on a machine without CUDA (the CPU test)
SKIP_MESSAGE = "no CUDA device: skipped"
STEPS = ("features", "sam", "sharpness", "unlearning", "smoke", "distributed")


# --------------------------------------------------------------------------- table comparison
@dataclass(frozen=True)
class Rule:
    """How one smoke table of the CUDA run must match the CPU run.

    Text and integer cells (counts, names, verdicts) must be equal. Float cells must satisfy
    ``|gpu - cpu| <= rtol * max(|gpu|, |cpu|) + atol``; numbers inside text cells (claims.csv's
    "reproduced" column) get the same test plus one unit of their last printed digit, because a
    printed value flips its last digit on any difference that crosses a rounding boundary.
    Columns matching ``skip`` are properties of the device (wall time, memory) and not compared.
    """

    pattern: str
    why: str
    rtol: float = 1e-3
    atol: float = 1e-9
    skip: str = r"(?i)(time|sec_per_step|seconds|\bwall|_s$|\bmem|memory|bytes|\bmib\b|throughput|speed|/s\b)"
    compare: bool = True


# First match wins. Every table of every chapter falls under one rule; the report lists them.
RULES: tuple[Rule, ...] = (
    Rule("*/provenance*", "run metadata (host, device, times), not a result", compare=False),
    Rule("*/step_costs.csv", "step time and memory per SAM configuration: properties of the device "
         "(the GPU ratios are checked by the `sam` step); the configuration names must match", compare=True),
    Rule("*/claims.csv", "claim, paper and section text come from repro.reference and must be identical; the "
         "verdict must not flip between devices; numbers in 'reproduced' are aggregates of float metrics: "
         "<= 1e-3 relative plus one unit of the printed digit"),
    Rule("*", "counts and names exact; float metrics (accuracies, AUROC/FPR, sharpness, Kendall tau, losses) "
         "<= 1e-3 relative: CUDA kernels change only the float rounding, which must not move a reported "
         "metric by more than 0.1 %; wall time and memory columns are device properties and skipped"),
)

_NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def rule_for(table: str, rules=RULES) -> Rule:
    """The first rule whose glob matches ``table`` ("<chapter>/<file>.csv")."""
    for r in rules:
        if fnmatch.fnmatch(table, r.pattern):
            return r
    raise ValueError(f"no rule matches table {table!r}; add one to RULES (the last rule should be '*')")


def _close(a: float, b: float, rule: Rule, digit: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rule.rtol * max(abs(a), abs(b)) + rule.atol + digit


def _cell_diff(cpu, gpu, rule: Rule, numeric_col: bool, float_col: bool) -> Optional[str]:
    """None when the cells agree under ``rule``, else a short reason."""
    if numeric_col:
        a, b = float(cpu), float(gpu)
        if not float_col:  # an integer column: a count
            return None if (a == b or (math.isnan(a) and math.isnan(b))) else "count differs"
        return None if _close(a, b, rule) else f"relative difference {abs(a - b) / max(abs(a), abs(b), 1e-300):.2e}"
    sa, sb = "" if cpu != cpu else str(cpu), "" if gpu != gpu else str(gpu)  # NaN (empty cell) -> ""
    if sa == sb:
        return None
    na, nb = _NUM.findall(sa), _NUM.findall(sb)
    if _NUM.sub("#", sa) != _NUM.sub("#", sb) or len(na) != len(nb):
        return "text differs"
    for x, y in zip(na, nb):
        decimals = max(len(x.split(".")[1]) if "." in x and "e" not in x.lower() else 0,
                       len(y.split(".")[1]) if "." in y and "e" not in y.lower() else 0)
        if not _close(float(x), float(y), rule, digit=10.0 ** -decimals if decimals else 0.0):
            if decimals == 0 and "." not in x + y:
                return "count in text differs"
            return "number in text differs"
    return None


def _integral(s) -> bool:
    v = s.dropna().astype(float)
    return bool((v % 1 == 0).all())


def compare_frames(cpu, gpu, rule: Rule, table: str = "", max_report: int = 5) -> dict:
    """Compare two DataFrames cell by cell under ``rule``: ``{table, rule, cells, mismatches, passed, ...}``."""
    import pandas as pd

    out = dict(table=table, rule=rule.pattern, why=rule.why, rtol=rule.rtol, cells=0, skipped_columns=[],
               mismatches=[], passed=True)
    if not rule.compare:
        out["note"] = "not compared"
        return out
    if list(cpu.columns) != list(gpu.columns):
        out.update(passed=False, mismatches=[f"columns differ: cpu {list(cpu.columns)} vs cuda {list(gpu.columns)}"])
        return out
    if len(cpu) != len(gpu):
        out.update(passed=False, mismatches=[f"row count differs: cpu {len(cpu)} vs cuda {len(gpu)}"])
        return out
    bad = []
    for col in cpu.columns:
        if re.search(rule.skip, str(col)):
            out["skipped_columns"].append(str(col))
            continue
        a, b = cpu[col], gpu[col]
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) \
            and not pd.api.types.is_bool_dtype(a)
        # a column whose values are all whole numbers on both devices is a count: compared exactly
        float_col = numeric and not (_integral(a) and _integral(b))
        for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
            out["cells"] += 1
            why = _cell_diff(x, y, rule, numeric, float_col)
            if why:
                bad.append(f"row {i}, column {col!r}: cpu {x!r} vs cuda {y!r} ({why})")
    out["n_mismatches"] = len(bad)
    out["mismatches"] = bad[:max_report] + ([f"... and {len(bad) - max_report} more"] if len(bad) > max_report else [])
    out["passed"] = not bad
    return out


def compare_dirs(cpu_dir: Path, gpu_dir: Path, rules=RULES) -> list[dict]:
    """Compare every CSV under ``cpu_dir`` (``<chapter>/<name>.csv``) with the same file under ``gpu_dir``."""
    import pandas as pd

    rows = []
    cpu_dir, gpu_dir = Path(cpu_dir), Path(gpu_dir)
    for f in sorted(cpu_dir.rglob("*.csv")):
        table = f.relative_to(cpu_dir).as_posix()
        rule = rule_for(table, rules)
        g = gpu_dir / table
        if not g.exists():
            rows.append(dict(table=table, rule=rule.pattern, why=rule.why, cells=0, passed=False,
                             mismatches=["missing from the CUDA run"]))
            continue
        rows.append(compare_frames(pd.read_csv(f), pd.read_csv(g), rule, table))
    for g in sorted(gpu_dir.rglob("*.csv")):
        table = g.relative_to(gpu_dir).as_posix()
        if not (cpu_dir / table).exists():
            rows.append(dict(table=table, rule="", why="", cells=0, passed=False,
                             mismatches=["written by the CUDA run only"]))
    return rows


# --------------------------------------------------------------------------- report
def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return str(v)


def markdown(result: dict) -> str:
    """The RESULTS.md section of one run: checks, smoke-table comparisons and the tolerance rules."""
    lines = [f"## GPU: {result['device']}", "",
             f"`make gpu-check` on {result['date']} ({result['machine']}); {result['wall_s']:.0f} s of "
             f"{result['budget_s']:.0f} s budget; {'all checks passed' if result['passed'] else 'SOME CHECKS FAILED'}.",
             "", "| step | benchmark | metric | value | reference | ratio | target | met |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r.get('step', '')} | {r['benchmark']} | {r['metric']} | {_fmt(r.get('value'))} | "
                     f"{r.get('reference', '')} | {_fmt(r.get('ratio'))} | {r.get('target', '')} | "
                     f"{'yes' if r.get('passed') else 'NO'} |")
    tables = result.get("tables") or []
    if tables:
        n_ok = sum(t["passed"] for t in tables)
        lines += ["", f"Smoke tables, CUDA vs CPU: {n_ok} of {len(tables)} equal within their rule.", "",
                  "| table | rule | cells | skipped columns | result |", "|---|---|---|---|---|"]
        for t in tables:
            res = "equal" if t["passed"] else "; ".join(t.get("mismatches", []))[:300].replace("|", "/")
            if t.get("note"):
                res = t["note"]
            lines.append(f"| {t['table']} | `{t['rule']}` | {t.get('cells', 0)} | "
                         f"{', '.join(t.get('skipped_columns', [])) or '–'} | {res} |")
        lines += ["", "Tolerance rules (first match wins):", ""]
        lines += [f"- `{r['pattern']}`: {r['why']}" + (f" (rtol {r['rtol']:g})" if r["compare"] else "")
                  for r in result.get("rules", [])]
    if result.get("errors"):
        lines += ["", "Steps that did not complete:", ""] + [f"- {k}: {v}" for k, v in result["errors"].items()]
    return "\n".join(lines) + "\n"


def write_report(result: dict, json_path: Path, results_md: Path) -> str:
    """Write ``result`` as JSON and append its Markdown section to ``results_md``; returns the Markdown."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    results_md = Path(results_md)
    old = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    results_md.write_text(old.rstrip("\n") + "\n\n" + md)
    return md


# --------------------------------------------------------------------------- checks (CUDA only)
def _bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_features(dev) -> list[dict]:
    import timm
    import torch

    bf = _bench("bench_features")
    torch.manual_seed(0)
    x = torch.randint(0, 256, (256 * 6, 3, 224, 224), dtype=torch.uint8)
    rows = []
    for arch, name in (("resnet50", "timm_resnet50"), ("vit_base_patch16_224", "timm_vit_b16")):
        model = timm.create_model(arch, pretrained=False, num_classes=1000)  # random init: speed only
        rows += bf.throughput_rows(model, x, name, batch_size=256, reps=3, device=dev)
        del model
        torch.cuda.empty_cache()
    return rows


def _amp(make: Callable):
    """A model factory whose forward runs under bf16 autocast in channels_last (the AMP setting of the
    paper's GPU timings); bf16 needs no GradScaler, so the optimizer steps are the plain ones."""
    import torch

    def build():
        m = make().to(memory_format=torch.channels_last)
        fwd = m.forward

        def forward(*a, **k):
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                return fwd(*a, **k).float()

        m.forward = forward  # an instance attribute keeps parameter names (SAM-ON selects by name)
        return m

    return build


def check_sam(dev) -> list[dict]:
    import torch

    from repro.models import create_model
    from repro.sam.timing import step_costs

    bs = _bench("bench_sam")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (128,), generator=g)
    costs = step_costs(_amp(lambda: create_model("wrn28_10", 100)), x, y, repeats=5, device=dev)
    return bs.rows_from_costs(costs, "wrn28_10, batch 128, 32px, bf16 autocast, cuda", cuda=True)


def check_sharpness(dev) -> list[dict]:
    rows = _bench("bench_sharpness").main(["--device", "cuda", "--arch", "wrn16_4", "--res", "32", "--batch", "128",
                                           "--steps", "10", "--batches", "2", "--repeats", "3"])
    return rows


def check_unlearning(dev) -> list[dict]:
    return _bench("bench_unlearning").main(repeats=20, batch=32)


def _run(cmd: list[str], env: dict, timeout: float, log: Path) -> tuple[int, str]:
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=max(timeout, 1))
        log.write_text(p.stdout + "\n--- stderr ---\n" + p.stderr)
        return p.returncode, (p.stderr.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired as e:
        log.write_text(f"timed out after {timeout:.0f} s\n{e.stdout or ''}\n{e.stderr or ''}")
        return 124, f"timed out after {timeout:.0f} s"


def _chapters() -> list[str]:
    from repro.book import stage

    return [stage.chapter_of(nb) for nb in stage.notebook_paths()]


def run_smoke(work: Path, device: str, deadline: float, threads: int) -> dict:
    """Every chapter in the smoke profile on ``device`` into ``work/<device>``; ``{chapter: (rc, last line, s)}``."""
    env = dict(os.environ, REPRO_RESULTS=str(work / device), REPRO_CACHE=str(work / f"cache_{device}"),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = {}
    for ch in _chapters():
        left = deadline - time.time()
        if left < 5:
            out[ch] = (124, "not started: time budget used up", 0.0)
            continue
        t0 = time.time()
        rc, last = _run([sys.executable, "-m", "repro.cli", "run", ch, "--profile", "smoke", "--device", device],
                        env, left, work / "logs" / f"smoke_{device}_{ch}.log")
        out[ch] = (rc, last, time.time() - t0)
    return out


def smoke_rows(cpu: dict, gpu: dict, tables: list[dict]) -> list[dict]:
    rows = []
    for ch, (rc, last, dt) in gpu.items():
        c_rc = cpu.get(ch, (None, "not run", 0))[0]
        rows.append(dict(benchmark=f"smoke chapter {ch} (--device cuda)", metric="seconds", value=dt,
                         reference=f"cpu run: {'ok' if c_rc == 0 else f'rc {c_rc}'}" + ("" if rc == 0 else f"; {last}"),
                         ratio=None, target="executes", passed=rc == 0))
    n_ok = sum(t["passed"] for t in tables)
    rows.append(dict(benchmark="smoke tables CUDA vs CPU", metric="tables equal within their rule", value=float(n_ok),
                     reference=f"{len(tables)} tables", ratio=n_ok / max(len(tables), 1),
                     target="all (rules below)", passed=bool(tables) and n_ok == len(tables)))
    return rows


def check_distributed(work: Path, deadline: float) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="4")
    runs = [("DDP SAM (repro.train_ddp)", "ddp",
             ["-m", "repro.train_ddp", "--profile", "smoke", "--model", "resnet_t", "--epochs", "1", "--rho", "0.05",
              "--sam-params", "only_norm", "--device", "cuda"]),
            ("FSDP JensUn unlearning (repro.unlearn_dist)", "fsdp",
             ["-m", "repro.unlearn_dist", "--profile", "smoke", "--method", "jensun", "--strategy", "fsdp",
              "--steps", "5", "--device", "cuda"])]
    rows = []
    for what, tag, args in runs:
        out = work / tag
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", *args,
               "--out", str(out)]
        rc, last = _run(cmd, env, min(150.0, deadline - time.time()), work / "logs" / f"{tag}.log")
        m = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
        backend = m.get("backend")
        ok = rc == 0 and backend == "nccl"
        note = f"backend {backend!r}, world size {m.get('world_size')}, {m.get('wall_s', float('nan')):.1f} s"
        if rc != 0:
            note = f"exit {rc}: {last}"
        elif backend != "nccl":
            note += ("; no process group was created, so NCCL/DDP/FSDP were NOT exercised "
                     "(repro.train.distributed.init_from_env initialises only when WORLD_SIZE > 1)")
        rows.append(dict(benchmark=f"torchrun --nproc_per_node=1: {what}", metric="exit status", value=float(rc),
                         reference=note, ratio=None, target="exit 0 over NCCL", passed=ok))
    return rows


def machine() -> str:
    return _bench("run").machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-s", type=float, default=480.0, help="overall time budget (issue 18: 8 minutes)")
    p.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--work", default=None, help="scratch folder (default: a fresh folder under /tmp)")
    p.add_argument("--json", default=str(HERE / "gpu_check.json"))
    p.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    a = p.parse_args(argv)
    steps = [s for s in a.only.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        p.error(f"unknown step(s) {unknown}; choose from {', '.join(STEPS)}")

    import torch

    if os.environ.get(NO_CUDA_ENV) == "1" or not torch.cuda.is_available():
        why = f"{NO_CUDA_ENV}=1" if os.environ.get(NO_CUDA_ENV) == "1" else f"torch {torch.__version__} sees no GPU"
        print(f"[gpu-check] {SKIP_MESSAGE} ({why}); nothing was run and {a.results_md} is unchanged. "
              "Run `make gpu-check` on a machine with an NVIDIA GPU (README: GPU check).")
        return 0

    t_start = time.time()
    deadline = t_start + a.budget_s
    dev = torch.device("cuda", 0)
    work = Path(a.work) if a.work else Path(f"/tmp/repro_gpu_check_{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    rows, errors, tables = [], {}, []
    threads = max(1, (os.cpu_count() or 2) // 2)

    # the CPU smoke reference runs in the background from the start, on half the cores
    cpu_smoke: dict = {}
    bg = None
    if "smoke" in steps:
        bg = threading.Thread(target=lambda: cpu_smoke.update(run_smoke(work, "cpu", deadline - 20, threads)))
        bg.start()
    checks = {"features": lambda: check_features(dev), "sam": lambda: check_sam(dev),
              "sharpness": lambda: check_sharpness(dev), "unlearning": lambda: check_unlearning(dev)}
    for name in [s for s in STEPS if s in steps and s in checks]:
        if time.time() > deadline - 120:
            errors[name] = "skipped: time budget"
            continue
        print(f"[gpu-check] {name} ...", flush=True)
        try:
            rows += [dict(r, step=name) for r in checks[name]()]
        except Exception as e:  # one broken step is reported; the others still run
            errors[name] = f"{type(e).__name__}: {e}"
        torch.cuda.empty_cache()
    if "smoke" in steps:
        print("[gpu-check] smoke chapters on cuda ...", flush=True)
        gpu_smoke = run_smoke(work, "cuda", deadline - 60, threads)
        bg.join()
        tables = compare_dirs(work / "cpu" / "smoke", work / "cuda" / "smoke")
        rows += [dict(r, step="smoke") for r in smoke_rows(cpu_smoke, gpu_smoke, tables)]
    if "distributed" in steps:
        print("[gpu-check] torchrun DDP / FSDP ...", flush=True)
        try:
            rows += [dict(r, step="distributed") for r in check_distributed(work, deadline)]
        except Exception as e:
            errors["distributed"] = f"{type(e).__name__}: {e}"
    passed = all(r["passed"] for r in rows) and not errors
    result = dict(device=torch.cuda.get_device_name(0), date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  machine=machine(), wall_s=time.time() - t_start, budget_s=a.budget_s, steps=steps, passed=passed,
                  rows=rows, tables=tables, errors=errors, rules=[asdict(r) for r in RULES], work=str(work))
    md = write_report(result, Path(a.json), Path(a.results_md))
    print(md)
    print(f"[gpu-check] wrote {a.json} and appended to {a.results_md}; logs under {work / 'logs'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
