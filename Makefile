# Quick start targets. `make run` and `make test` set up .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch; override e.g. `make run TORCH="torch==2.13.0 --index-url ..."`.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
OPEN   ?= assets/sample_studies
# Real label/report files used as test inputs (never committed): the torchxrayvision wheel.
TEST_DATA := $(VENV)/test-data
TXV_WHEEL := $(TEST_DATA)/torchxrayvision-1.5.7-py3-none-any.whl
N      ?= 10000

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv run test lint demo-model samples clean fuzz test-data

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/cxrclip-viewer $(OPEN)

test: $(STAMP) test-data
	QT_QPA_PLATFORM=offscreen CXRCLIP_TEST_DATA=$(abspath $(TEST_DATA)) $(PY) -m pytest $(PYTEST_ARGS)

# Best effort: tests that need these files skip (saying why) when the download fails.
test-data: $(TXV_WHEEL)

$(TXV_WHEEL): | $(STAMP)
	mkdir -p $(TEST_DATA)
	-$(PIP) download -q --no-deps torchxrayvision==1.5.7 -d $(TEST_DATA)

# Seeded fuzzing of the viewer's scan -> decode -> render -> tag path; writes a table of outcomes.
fuzz: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m benchmarks.fuzz_viewer --n $(N) --seed 0

# Rebuild the bundled demo model (phantoms -> train -> held-out eval -> fp16 export -> sentence bank).
demo-model: $(STAMP)
	$(PY) -m training.demo_model

# Regenerate the three sample studies in assets/sample_studies.
samples: $(STAMP)
	$(VENV)/bin/cxrclip phantom samples --out assets/sample_studies

lint: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
