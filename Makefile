# Reproducibility suite: `make book` builds the site, `make test` runs every test.
# Incremental: a chapter re-executes only when its notebook, the repro sources/profiles, or the
# run parameters (SEED, DEVICE) changed; `make book` right after `make book` does nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= cpu
SEED    ?= 0
DEVICE  ?= auto
# REBUILD=1: ignore the released artifacts (releases/) and recompute them from code (`repro run --no-release`)
REBUILD ?=
RUN_FLAGS := $(if $(filter 1 yes true,$(REBUILD)),--no-release)
RESULTS ?= results
BOOK_OUT ?= book
STAGE   ?= $(BOOK_OUT)/_build/stage
PYTHON  ?= $(shell command -v python3.11 || command -v python3)

# Use the active virtual environment if there is one, else a project-local .venv.
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
STEMS     := $(basename $(notdir $(NOTEBOOKS)))
EXECUTED  := $(patsubst %,$(RESULTS)/$(PROFILE)/executed/%.ipynb,$(STEMS))
# Names with spaces (some of the authors' released NINCO annotation files) cannot be make prerequisites;
# they are vendored data that never change without a code change beside them.
REPRO_SRC := $(shell find repro -type f \( -name '*.py' -o -name '*.yaml' -o -name '*.csv' \) -not -name '* *' 2>/dev/null | sort)
# Site-local profile overrides (README: REPRO_PROFILE_DIR) count as sources too.
REPRO_SRC += $(if $(REPRO_PROFILE_DIR),$(wildcard $(REPRO_PROFILE_DIR)/*.yaml))
BOOK_SRC  := $(wildcard book/*.md book/*.yml book/*.bib)
HTML      := $(BOOK_OUT)/_build/html/index.html
PARAMS    := $(RESULTS)/$(PROFILE)/.params

.PHONY: help install browser-deps book chapter test test-fast bench gpu-check clean

help:
	@echo "make book     [PROFILE=cpu|smoke|full SEED=0 DEVICE=auto]  execute chapters (papermill) + build the site"
	@echo "              [REBUILD=1]                                   ignore released artifacts (releases/), recompute them"
	@echo "make chapter  CH=ch5 [PROFILE=...]                        rerun one chapter"
	@echo "make test                                                  unit tests + smoke notebooks + book build"
	@echo "make bench                                                 benchmarks -> benchmarks/RESULTS.md"
	@echo "make gpu-check                                             CUDA paths on one GPU (<= 8 min) -> RESULTS.md \"GPU\" section"
	@echo "make install                                               create $(VENV) and install the suite"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# The run parameters as a stamp file, rewritten (at parse time, so that `make -q` stays exact) only
# when SEED/DEVICE/REPRO_PROFILE_DIR change: executed notebooks depend on the parameters' values.
PARAMS_LINE := seed=$(SEED) device=$(DEVICE) profile_dir=$(REPRO_PROFILE_DIR) rebuild=$(RUN_FLAGS)
ifneq ($(filter book $(RESULTS)/%,$(MAKECMDGOALS)),)
_params := $(shell mkdir -p $(dir $(PARAMS)) && { echo "$(PARAMS_LINE)" | cmp -s - $(PARAMS) || echo "$(PARAMS_LINE)" > $(PARAMS); })
endif
$(PARAMS):
	@mkdir -p $(@D)
	@echo "$(PARAMS_LINE)" > $@

$(RESULTS)/$(PROFILE)/executed/%.ipynb: notebooks/%.ipynb $(REPRO_SRC) $(PARAMS) | $(VENV)/.installed
	REPRO_RESULTS=$(abspath $(RESULTS)) $(PY) -m repro.cli run $* --profile $(PROFILE) --seed $(SEED) --device $(DEVICE) $(RUN_FLAGS)

# Chapter 4 and the appendix read chapter 3's zoo from the cache: under `make -j2 book` they start after chapter 3,
# so no model is trained twice (order only: a re-executed chapter 3 does not re-execute them)
$(RESULTS)/$(PROFILE)/executed/ch4_mahalanobis_pp.ipynb $(RESULTS)/$(PROFILE)/executed/appendix_related_ood.ipynb: \
  | $(RESULTS)/$(PROFILE)/executed/ch3_ninco.ipynb

$(HTML): $(EXECUTED) $(BOOK_SRC) | $(VENV)/.installed
	REPRO_RESULTS=$(abspath $(RESULTS)) $(PY) -m repro.cli book --profile $(PROFILE) --results $(abspath $(RESULTS)) --stage $(STAGE) --out $(BOOK_OUT)
	@touch $@

book: $(HTML)
	@$(PY) -c "import json,pathlib; p=pathlib.Path('$(RESULTS)/$(PROFILE)/executed/timings.json'); t=json.loads(p.read_text()) if p.exists() else {}; [print(f'  {k:28s} {v:7.1f} s (last execution)') for k,v in sorted(t.items())]"
	@echo "Book ($(PROFILE) profile): $(abspath $(BOOK_OUT))/_build/html/index.html"
	@echo "Open it with: $(PY) -m http.server -d $(BOOK_OUT)/_build/html 8000   (then http://localhost:8000)"

chapter: | $(VENV)/.installed
	@test -n "$(CH)" || { echo "usage: make chapter CH=ch5 [PROFILE=smoke|cpu|full] [SEED=0] [DEVICE=auto]"; exit 2; }
	REPRO_RESULTS=$(abspath $(RESULTS)) $(PY) -m repro.cli run $(CH) --profile $(PROFILE) --seed $(SEED) --device $(DEVICE) $(RUN_FLAGS)

# Headless Chromium for tests/test_browser.py: installed from Debian's packages when we may (root),
# otherwise that test is skipped with a message.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium + chromium-driver (Debian packages) for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
	    || echo "could not install chromium; tests/test_browser.py will be skipped"; \
	else echo "chromium/chromedriver missing and not root: tests/test_browser.py will be skipped (apt-get install chromium chromium-driver)"; fi

test: | $(VENV)/.installed
	@$(MAKE) --no-print-directory browser-deps
	$(PY) -m pytest tests -n 2 --dist loadfile --durations=15

test-fast: | $(VENV)/.installed
	$(PY) -m pytest tests -n 2 --dist loadfile -m "not slow"

bench: | $(VENV)/.installed
	$(PY) benchmarks/run.py

# Without CUDA this prints "no CUDA device: skipped" and succeeds (tests/test_gpu_check.py).
gpu-check: | $(VENV)/.installed
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(RESULTS) $(BOOK_OUT)/_build
