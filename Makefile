# `make run` starts the app, `make test` runs every test; both set up .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements

.PHONY: run test lint format clean-venv gpu-bundle

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m musegnn_core app

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean-venv:
	rm -rf $(VENV)

# `make gpu-bundle`: what benchmarks/bench_gpu.py needs on a GPU machine without network
# whose own Python (3.12) has torch, numpy, scipy, pandas, h5py, scikit-learn, matplotlib
# and numba but not the packages below: their wheels (pinned to requirements.txt's
# versions, without dependencies) and the data the benchmark reads, in gpu-bundle/
# (git-ignored, about 45 MiB). There: see the header of benchmarks/bench_gpu.py.
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS := anndata scanpy umap-learn pynndescent leidenalg igraph texttable natsort \
	session-info2 legacy-api-wrap zarr numcodecs google-crc32c donfig scverse-misc \
	array-api-compat
SHARED_DATA ?= ../shared/data

gpu-bundle: $(STAMP)
	rm -rf gpu-bundle && mkdir -p gpu-bundle/wheels gpu-bundle/data/atlas gpu-bundle/data/orthologs
	$(PY) -m pip download -q --no-deps --only-binary=:all: --dest gpu-bundle/wheels \
		--python-version $(GPU_PYTHON_VERSION) --implementation cp \
		$(foreach n,28 27 17,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64 \
		$$($(PY) -c 'import importlib.metadata as m, sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))
	cp $(SHARED_DATA)/atlas/*.h5ad gpu-bundle/data/atlas/
	cp $(SHARED_DATA)/orthologs/human_mouse_orthologs_hcop.tsv.gz gpu-bundle/data/orthologs/
	du -sh gpu-bundle
