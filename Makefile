# SignalHub: `make run` starts everything, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SIGNALHUB_DATA_DIR ?= var
export SIGNALHUB_DATA_DIR

.PHONY: run test venv secret-key bench clean

# The environment is rebuilt when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# A development secret key, kept in the data directory (never committed).
secret-key: $(SIGNALHUB_DATA_DIR)/secret_key
$(SIGNALHUB_DATA_DIR)/secret_key:
	mkdir -p -m 700 $(SIGNALHUB_DATA_DIR)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

# Web server and django-q2 cluster in the foreground; Ctrl-C stops both.
# `make run ALPINE_STUB=8001` also runs a local Alpine stub on that port and delivers to it.
ALPINE_STUB ?=
run: venv secret-key
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py bootstrap
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py serve $(if $(ALPINE_STUB),--alpine-stub $(ALPINE_STUB))

# The whole suite. With DATABASE_URL pointing at PostgreSQL it runs there.
# pytest's "no tests collected" (exit 5) is a failure here, not a pass.
test: venv secret-key
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

bench: venv secret-key
	$(PY) bench/admin.py

clean:
	rm -rf $(VENV) .pytest_cache
