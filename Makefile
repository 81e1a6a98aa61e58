# Developer commands. `make run` serves the site locally; `make test` runs the whole suite;
# `make lint` runs the gates CI runs (ruff, ruff format, mypy, eslint).

# uv from PATH, else the copy pip installs as a module.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format install install-js migrate superuser check

# --compile-bytecode: the libraries load from .pyc even where PYTHONDONTWRITEBYTECODE is set (every
# test worker and test subprocess would otherwise compile Django afresh: 10 s of collection, not 3).
install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
	@$(UV) sync --frozen --quiet --compile-bytecode

run: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py runserver $(HOST):$(PORT)

test: install
	$(UV) run pytest

install-js:
	@test -d tests/browser/node_modules/eslint || npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

lint: install install-js
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	DEBUG=true $(UV) run mypy
	npm run --silent --prefix tests/browser lint

# Rewrites files: ruff's safe fixes and formatting.
format: install
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

migrate: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py migrate --noinput

superuser: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py createsuperuser

check: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py check
