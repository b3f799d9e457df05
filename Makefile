# The two commands: `make run` (set up + start on the embedded default) and `make test` (the whole suite).
VENV ?= .venv
PORT ?= 8080

.PHONY: run test setup bench clean

run: $(VENV)/.installed
	$(VENV)/bin/lockgate serve --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.installed
	scripts/test.sh

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
