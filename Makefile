# The README's two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

COMPILED_VENV := .venv-compiled
COMPILED_STAMP := $(COMPILED_VENV)/.installed
# The tests that run the compiled modules in process (the rest start `gateway` subprocesses).
COMPILED_TESTS := tests/http tests/proxy tests/auth tests/test_build.py

.PHONY: run test test-compiled lint bench bench-quick soak clean pure-source

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A compiled module next to its .py would be imported instead of it by the editable install:
# the source tree never keeps one (wheels are built under build/, never in place).
pure-source:
	@find gateway -name '*.so' -print -delete | sed 's/^/removed a compiled module from the source tree: /'

## run: set up, then serve routes.yaml in front of the demo upstream (Ctrl-C stops both)
run: $(STAMP) pure-source
	$(BIN)/python -m examples.run_demo

## test: set up, then lint, type-check and run every test, then the in-process ones again
## against the compiled wheel (users' build; skipped with the reason without a C compiler)
test: $(STAMP) pure-source lint
	$(BIN)/pytest -q
	@$(MAKE) --no-print-directory test-compiled

# The wheel as users install it (setup.py compiles the request path with mypyc), in its own
# virtualenv: rebuilt whenever the source changes.
$(COMPILED_STAMP): $(STAMP) setup.py $(shell find gateway -name '*.py')
	# build/lib.* would carry a module's stale .so into the wheel after it left setup.COMPILED.
	rm -rf build/wheel build/lib.* build/bdist.*
	$(BIN)/pip wheel --quiet --no-deps -w build/wheel .
	test -x $(COMPILED_VENV)/bin/python || $(PYTHON) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/pip install --quiet --force-reinstall --no-deps build/wheel/gateway-*.whl
	$(COMPILED_VENV)/bin/pip install --quiet "$$(ls build/wheel/gateway-*.whl)[dev]"
	touch $(COMPILED_STAMP)

## test-compiled: the in-process tests against the compiled wheel (part of `make test`)
test-compiled: $(COMPILED_STAMP) pure-source
	@cd build && ../$(COMPILED_VENV)/bin/python -c 'import gateway.http.server as m, sys; \
	    sys.exit(0 if m.__file__.endswith(".so") else 3)' || { \
	    if [ "$${CI:-}" = "true" ]; then echo "the wheel is not compiled (no C compiler?)" >&2; exit 1; fi; \
	    echo "skipping the compiled-build tests: the wheel fell back to pure Python (no C compiler)"; \
	    exit 0; }
	GATEWAY_COMPILED=1 $(COMPILED_VENV)/bin/pytest -q --import-mode=append -p no:cacheprovider \
	    $(COMPILED_TESTS)

lint: $(STAMP) pure-source
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict gateway bench

## bench: the benchmark suite (installs wrk, nginx and haproxy from the system's packages if
## missing), the gateway as users install it: the compiled wheel
bench: $(COMPILED_STAMP) pure-source
	$(BIN)/python -m bench.run --gateway-python $(COMPILED_VENV)/bin/python

## bench-quick: a one-minute smoke run of the benchmark suite
bench-quick: $(COMPILED_STAMP) pure-source
	$(BIN)/python -m bench.run --quick --gateway-python $(COMPILED_VENV)/bin/python

## soak: ten minutes of mixed traffic on 2 workers; fails on RSS or descriptor growth (MINUTES=N)
MINUTES ?= 10
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) $(COMPILED_VENV) build .mypy_cache .ruff_cache .pytest_cache
