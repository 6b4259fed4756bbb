# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install repconsole[console], open the console on the simulator
#   make server - create .venv-server, install repconsole[server] (no Qt), serve the demo site
#   make test  - create .venv with the test extras, run every test headless
#   make dist  - build the wheel and sdist, and the one-folder bundle dist/repconsole/
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The server's own environment: repconsole[server] only, so that `make server`
# runs exactly what a server-only install has (no Qt).
SVENV  := .venv-server
SSTAMP := $(SVENV)/.installed
TSTAMP := $(VENV)/.installed-test
ARGS   ?=

.PHONY: run server test bench lint schema vendor-rrweb cobrowse-stream clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[console]'
	@touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[console,server,cluster,test]'
	@touch $@ $(STAMP)

run: $(STAMP)
	$(VENV)/bin/repconsole $(ARGS)

$(SSTAMP): pyproject.toml
	$(PYTHON) -m venv $(SVENV)
	$(SVENV)/bin/python -m pip install --quiet --upgrade pip
	$(SVENV)/bin/python -m pip install --quiet -e '.[server]'
	@touch $@

server: $(SSTAMP)
	$(SVENV)/bin/repconsole-server $(ARGS)

test: $(TSTAMP) lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(ARGS)

# Static checks (also run by `make test`): the layers, ruff, and mypy --
# strict where the code is Qt-free (engine, protocol, server), default elsewhere.
lint: $(TSTAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check repconsole tests bench packaging
	$(VENV)/bin/mypy --strict repconsole/core repconsole/protocol repconsole/server
	$(VENV)/bin/mypy repconsole

# docs/protocol.schema.json is generated from repconsole.protocol; tests fail when it is stale.
schema: $(STAMP)
	$(PY) -m repconsole.protocol schema --write

# The vendored rrweb recorder and replayer (resources/rrweb/); needs npm.
vendor-rrweb:
	packaging/vendor-rrweb.sh

# resources/cobrowse/shop.rrweb.json: the demo shop recorded with rrweb in headless
# Chromium, as the help-link snippet records it (the simulator plays it); needs
# /usr/bin/chromium and /usr/bin/chromedriver.
cobrowse-stream: $(TSTAMP)
	$(PY) packaging/record_cobrowse_stream.py

# Every benchmark of bench/__main__.py; bench_cobrowse's browser part needs /usr/bin/chromium and
# /usr/bin/chromedriver (without them it says so and skips to its queue part).
bench: $(TSTAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m bench

# The bundle is made from the editable install in .venv, so it freezes exactly
# the code that `make run` runs; packaging/README.md covers Windows and macOS.
DSTAMP := $(VENV)/.installed-dist

.PHONY: dist

$(DSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[console]' 'build>=1.2' 'pyinstaller>=6.10'
	@touch $@ $(STAMP)

dist: $(DSTAMP)
	$(PY) -m build --outdir dist .
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/repconsole.spec
	@du -sh dist/repconsole

clean:
	rm -rf $(VENV) $(SVENV) build dist *.egg-info
