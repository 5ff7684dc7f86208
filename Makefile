# Quick start targets. `make run` and `make test` set up .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU build of torch; override e.g. `make run TORCH="torch==2.13.0 --index-url ..."`.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
OPEN   ?= assets/sample_studies

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv run test lint demo-model samples clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/cxrclip-viewer $(OPEN)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

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
