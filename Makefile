# Developer commands. `make run` serves the site locally; `make test` runs the whole suite.

# uv from PATH, else the copy pip installs as a module.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install migrate superuser check

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --user --quiet --break-system-packages uv
	@$(UV) sync --frozen --quiet

run: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py runserver $(HOST):$(PORT)

test: install
	$(UV) run pytest

migrate: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py migrate --noinput

superuser: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py createsuperuser

check: install
	DEBUG=$${DEBUG:-true} $(UV) run python manage.py check
