# Two commands do everything on a fresh machine (Python 3.11+, Node.js + npm, Debian):
#   make book   set up .venv and page assets, build the HTML into _build/html
#   make test   unit tests, then every notebook executed by nbval
# and: make lab (JupyterLab on the book), make browser-test (the built pages in
# headless chromium), make gpu-check (the CUDA tests, on a machine with a GPU).
# After setup, the build and the notebooks run with the network closed where the
# machine allows it (tools/offline.sh: a network namespace with only loopback).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
# tqdm bars are for people at a live kernel; the built pages and the test logs skip them
BATCH := TQDM_DISABLE=1 PYDEVD_DISABLE_FILE_VALIDATION=1
# one BLAS/PyTorch thread per process (a thread count is part of the rounding
# path: the notebook records are made with 1), and JOBS processes at once:
# two notebooks, or two test workers, on the two cores
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# and so is the instruction set: on x86-64 every library uses its AVX2 kernels,
# as on the machine that made the records (with AVX-512, OpenBLAS, ATen,
# oneDNN, MKL and NumPy's own loops would each print other last digits);
# conftest.py sets the same for a plain `pytest`
ifeq ($(shell uname -m),x86_64)
THREADS += OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
	MKL_ENABLE_INSTRUCTIONS=AVX2 NPY_DISABLE_CPU_FEATURES=X86_V4,AVX512_ICL,AVX512_SPR
endif
JOBS ?= 2
# the case study trains with PyTorch on the two threads its saved study used
# (book/data/vgg_study.json records them): beside another notebook it would
# oversubscribe the cores (216 s instead of about 70), so it runs alone, last
ALONE := book/09-finetuning-vgg16.ipynb

.PHONY: setup assets system-deps book test unit notebooks browser-test gpu-check lab lab-check clean

setup: $(READY)

$(READY): requirements.txt constraints.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

node_modules/.ready: package.json package-lock.json
	PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

_assets/.ready: node_modules/.ready tools/vendor_assets.py
	$(BIN)/python tools/vendor_assets.py || $(PYTHON) tools/vendor_assets.py
	touch $@

assets: _assets/.ready

system-deps:
	tools/install-system-deps.sh

book: $(READY) assets system-deps
	rm -rf _build/html
	$(BATCH) $(THREADS) tools/offline.sh $(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	$(BIN)/python tools/check_offline.py _build/html
	@echo "The book: file://$(CURDIR)/_build/html/index.html"

test: unit notebooks

unit: $(READY)
	$(THREADS) $(BIN)/python -m pytest -n $(JOBS) -m "not browser and not notebooks" tests

notebooks: $(READY)
	rm -rf _build/.printed
	$(BATCH) $(THREADS) tools/offline.sh $(BIN)/python -m pytest -n $(JOBS) --dist loadscope --nbval-lax book/ $(addprefix --ignore=,$(ALONE))
	$(BATCH) $(THREADS) tools/offline.sh $(BIN)/python -m pytest --nbval-lax $(ALONE)
	$(BATCH) $(THREADS) tools/offline.sh $(BIN)/python -m pytest -s -m notebooks tests

browser-test: $(READY) system-deps node_modules/.ready
	test -f _build/html/index.html || $(MAKE) book
	# the page checks first, their load times not shared with axe-core's runs
	# (axe spends 10-20 s of CPU on a chapter; beside it a page load once
	# missed its 30 s network-idle wait), then axe on every page
	$(BIN)/python -m pytest -n $(JOBS) -m browser tests/browser --deselect tests/browser/test_a11y.py
	cat _build/page-weights.txt
	$(BIN)/python -m pytest -n $(JOBS) -m browser tests/browser/test_a11y.py

gpu-check: $(READY)
	$(BIN)/python -m pytest -m gpu -rs tests

lab: $(READY)
	$(BIN)/jupyter lab book/

# one checked exercise per chapter, run in JupyterLab's own UI (headless chromium):
# the shipped stub, the chapter's solution and a wrong answer (not part of .ci/run)
lab-check: $(READY)
	$(BATCH) $(THREADS) $(BIN)/python -u tools/lab_exercise_check.py

clean:
	rm -rf _build _assets .pytest_cache .hypothesis
