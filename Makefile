# `make test` on a fresh clone: creates .venv, installs skillforge with its test extras, runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tested torch build. On the project's CI machines this CPU wheel is on local disk; elsewhere
# pip fetches it from PyPI (a CUDA build on Linux x86_64). Override, e.g. TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
export MUJOCO_GL ?= egl

.PHONY: install test lint pretrain clean system-deps server docs docs-serve

$(BIN)/skillforge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,cluster,docs]"
	touch $@

install: $(BIN)/skillforge

# Headless MuJoCo rendering needs Mesa's EGL; the shared store needs PostgreSQL's server
# (Debian/Ubuntu packages; root or sudo).
system-deps:
	@if ! ldconfig -p | grep -q libEGL_mesa; then \
		apt-get install -y --no-install-recommends libegl1 libegl-mesa0 || \
		echo "warning: could not install libegl1 libegl-mesa0; video rendering will be skipped"; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get install -y --no-install-recommends postgresql || \
		echo "warning: could not install postgresql; the shared-store tests will fail"; \
	fi

# The shared store for a team or a cluster: PostgreSQL + mlflow server in ./mlflow-server.
server: install system-deps
	$(BIN)/skillforge server

lint: install
	$(BIN)/ruff check skillforge cli tests benchmarks docs/hooks.py

test: install system-deps lint
	$(BIN)/pytest -q -n 2 --dist loadgroup

pretrain: install
	$(BIN)/skillforge pretrain hopper

# The documentation site (docs/, mkdocs.yml) into site/; any warning (a broken link, a missing
# reference) fails the build. docs-serve previews it on http://127.0.0.1:8000.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache site
