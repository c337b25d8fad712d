# Every target creates or refreshes .venv first, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench golden clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The whole job on the example site: posts, subscribers, one send through the outbox (no API key
# or NEWSLETTER_SECRET needed). Re-runnable: the second run says the campaign was already sent.
DEMO_NOW := 2026-11-01T09:00
demo: $(STAMP)
	$(BIN)/newsletter posts --month 2026-10 --now $(DEMO_NOW)
	$(BIN)/newsletter subscribers import subscribers.example.csv
	$(BIN)/newsletter send --month 2026-10 --now $(DEMO_NOW) --transport outbox --yes --no-progress
	@echo "Open the outbox index above (outbox/<campaign>/index.html) in a browser; each .eml opens in a mail client."

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

# the long fault matrix (kill -9 / SIGTERM / SIGHUP at many moments of a 20,000-recipient send)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m slow

lint: $(STAMP)
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/ruff format --check newsletter tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

golden: $(STAMP)
	$(BIN)/python -m pytest -q tests --update-golden

clean:
	rm -rf $(VENV) outbox archive .pytest_cache .mypy_cache .ruff_cache
