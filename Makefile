# Every target creates or refreshes .venv first, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench golden clean venv screenshots docs

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
	@echo "Outbox index: $$(ls -t $(CURDIR)/outbox/*/index.html | head -n 1)"
	@echo "  open it in a browser (each .eml opens in a mail client). Run the tool as .venv/bin/newsletter, or '. .venv/bin/activate' first."

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

# The documentation site (docs/ -> site/); --strict turns every warning into an error.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

golden: $(STAMP)
	$(BIN)/python -m pytest -q tests --update-golden

clean:
	rm -rf $(VENV) outbox archive site .pytest_cache .mypy_cache .ruff_cache

# The rendering gallery in docs/gallery/: blast and digest at 600 and 375 px, light and dark,
# in headless Chromium (apt-get install chromium). See docs/email-design.md.
screenshots: $(STAMP)
	$(BIN)/python tests/make_gallery.py
