# The two set-up commands of the README: `make book` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 is the CPU build on our CI machines; override e.g. TORCH="torch==2.11.0" for another build.
TORCH ?= torch==2.13.0
# OpenAI's reference code for the equivalence tests; installed without its dependencies (torchvision).
OPENAI_CLIP ?= openai-clip==1.0.1
JB_FLAGS ?= -W -n --keep-going

.PHONY: book test data reproduce check-book lint clean gpu gpu-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.book-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[book]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[test]"
	$(BIN)/python -m pip install --no-deps "$(OPENAI_CLIP)"
	touch $@

## book: install the package and the book's tools, execute every chapter, build the HTML into _build/html
book: $(VENV)/.book-installed
	rm -rf _build/fallback _build/tables
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book is at _build/html/index.html"

## test: install the package and the test tools, run the test suite and the linter
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest
	$(BIN)/ruff check src tests

## check-book: load every page of the built book in headless Chromium; fail on raw TeX, broken images,
## tracebacks or dead internal links (screenshots in _build/screenshots)
check-book:
	$(BIN)/python .ci/check_book.py _build/html

## data: build the large corpus the cpu headline trains on (needs npm, apt-get and pip; ~20 minutes on 2 cores) and
## refresh results/data/large; `repro data build --corpus full` builds the smaller corpus of the earlier recipe
data: $(VENV)/.book-installed
	$(BIN)/repro data build --corpus large --summary-dir results/data/large

## reproduce: re-run every experiment at PROFILE (cpu: ~15 hours on 2 cores, the result files' wall times, ~10 of
## them the objectives sweep; gpu: one H200), overwriting
## results/NAME/PROFILE/ and retraining everything cached under runs/*/PROFILE/, then rebuild the book from those
## results (PROFILE=smoke runs in seconds, for a check)
PROFILE ?= cpu
reproduce: $(VENV)/.book-installed
	@if [ "$(PROFILE)" != smoke ]; then $(BIN)/repro data build --corpus full --summary-dir results/data/full; \
		$(BIN)/repro data build --corpus large --summary-dir results/data/large; fi
	rm -rf runs/*/$(PROFILE)
	for name in $$($(BIN)/python -c "from repro.experiments import EXPERIMENTS; print(*EXPERIMENTS)"); do \
		$(BIN)/repro run $$name --profile $(PROFILE) --workdir runs --force || exit 1; done
	rm -rf _build/fallback _build/tables
	REPRO_PROFILE=$(PROFILE) TQDM_DISABLE=1 $(BIN)/jupyter-book build . $(JB_FLAGS)

## gpu-data: here, before a GPU lease: the copy of the large corpus that travels (every evaluation split and as
## many training pictures as fit in 48 MiB, at 32 px) into gpu-data/, and ftfy's wheels (absent there) into .whl/
REPRO_DATA ?= $(HOME)/.cache/clip-repro
gpu-data: $(VENV)/.book-installed
	$(BIN)/repro data gpu-subset --corpus-dir $(REPRO_DATA)/build/large --out gpu-data/build/large --budget-mib 48
	$(BIN)/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl ftfy==6.3.1 wcwidth==0.9.4

## gpu: on the lent GPU machine (its own python3 and torch; carry gpu-data and .whl): the gpu profile's headline
## (every seed of clip_small) and the compute study's largest points within 9 minutes, resumable; files in $OUT
gpu:
	python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
	PYTHONPATH=src:/tmp/site REPRO_DATA=gpu-data PYTHONUNBUFFERED=1 python3 -m repro.gpu --profile gpu \
		--out $${OUT:-_build/gpu} --deadline-s 540

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests

clean:
	rm -rf _build
