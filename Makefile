# Rising Stars: everything a developer or CI runs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := kit jobs auth upload processor operator web
STAMP := $(VENV)/.installed
# tus-js-client, a third-party tus client the tests drive under Node.js.
NODE_STAMP := tests/tusclients/node_modules/.installed
ENTRY ?=
# The web app: npm ci (lockfile) for tus-js-client and axe-core, then the build (hashed names)
# into the web service's package.
WEB_STAMP := services/web/risingstars/web/static/.built
# Lighthouse for make bench ENTRY=web (its own lockfile: a large tree the tests do not need).
LIGHTHOUSE_STAMP := bench/lighthouse/node_modules/.installed

.PHONY: help venv run test lint fmt bench chart-check openapi k8s clean
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt constraints.txt $(foreach s,$(SERVICES),services/$(s)/pyproject.toml) dev/pyproject.toml clients/cli/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(foreach s,$(SERVICES),-e services/$(s)) -e dev -e clients/cli -r requirements-dev.txt
	touch $@

$(NODE_STAMP): tests/tusclients/package.json tests/tusclients/package-lock.json
	npm ci --prefix tests/tusclients --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_STAMP): web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	node web/build.mjs
	touch $@

$(LIGHTHOUSE_STAMP): bench/lighthouse/package.json bench/lighthouse/package-lock.json
	npm ci --prefix bench/lighthouse --no-audit --no-fund --loglevel=error
	touch $@

venv: $(STAMP) $(WEB_STAMP) ## create .venv with every service (editable) and the dev tools, and build the web app

.PHONY: web screenshots
web: $(WEB_STAMP) ## build the web app (web/dist: hashed assets, index.html)

screenshots: $(STAMP) $(WEB_STAMP) ## every page of the web app at phone and desktop widths, into docs/web/
	$(BIN)/python -m risingstars.dev.screenshots docs/web

run: $(STAMP) $(WEB_STAMP) ## the whole system on http://localhost:8080 (Ctrl-C stops it)
	$(BIN)/python -m risingstars.dev.run

.PHONY: observe
observe: $(STAMP) ## make run plus Prometheus on the chart's rules, on BASE_PORT+7 (make run OBSERVE=1)
	OBSERVE=1 $(BIN)/python -m risingstars.dev.run

test: $(STAMP) $(NODE_STAMP) $(WEB_STAMP) ## the whole test suite (unit, integration, end to end, chart checks)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory chart-check

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) $(WEB_STAMP) $(LIGHTHOUSE_STAMP) ## benchmarks (ENTRY=name for one); prints BENCH lines
	$(BIN)/python -m bench $(ENTRY)

chart-check: $(STAMP) ## lint, render, validate and policy-scan the Helm chart
	PATH="$(CURDIR)/$(BIN):$$PATH" bash charts/check.sh

openapi: $(STAMP) ## regenerate the public API's document (services/upload/.../openapi.json)
	$(BIN)/python -m risingstars.dev.openapi

k8s: $(STAMP) ## regenerate k8s/base (the kubectl apply -k path) from the chart
	PATH="$(CURDIR)/$(BIN):$$PATH" bash charts/render-k8s.sh

clean: ## remove local state (.dev/) and caches
	rm -rf .dev .pytest_cache .ruff_cache .hypothesis

.PHONY: chart-boot
chart-boot: $(STAMP) $(if $(IMAGES),images) ## boot the rendered chart (every overlay) in network namespaces and drive the flow (root; IMAGES=1: pods from the built images)
	$(BIN)/python -m risingstars.dev.chartboot $(if $(IMAGES),--images) $(OVERLAYS)

FAULTS_RESULTS ?= docs/reliability/faults.jsonl
SOAK_MINUTES ?= 30
.PHONY: faults soak
faults: $(STAMP) ## the fault suite against the real processes (as root; ~15 min); results in docs/reliability/
	mkdir -p docs/reliability && rm -f $(FAULTS_RESULTS)
	FAULTS_RESULTS=$(FAULTS_RESULTS) $(BIN)/python -m pytest tests/faults -m "faults or faults_quick" -v $(PYTEST_ARGS)

soak: $(STAMP) ## SOAK_MINUTES (30) of mixed load, sampling each service every 10 s; CSV + PNG in docs/reliability/
	SOAK_MINUTES=$(SOAK_MINUTES) PYTHONPATH=tests $(BIN)/python -m faults.soak docs/reliability

.PHONY: loadtest loadtest-report
loadtest: $(STAMP) ## load test (HOST=url, default: starts make run; LOADTEST_ARGS='--plan capacity --scale 1')
	$(BIN)/python -m loadtest run $(if $(HOST),--host $(HOST)) $(LOADTEST_ARGS)

loadtest-report: $(STAMP) ## a load-test run (RUN=.dev/loadtest/runs/<time>) as a report in docs/capacity/
	$(BIN)/python -m loadtest report $(RUN) $(if $(OUT),--out $(OUT)) $(if $(NOTE),--note "$(NOTE)")

.PHONY: images
images: $(STAMP) $(WEB_STAMP) ## build the five service images with buildah (no daemon; as root), audit them, print their sizes
	$(BIN)/python -m risingstars.dev.images $(SERVICES_IMAGES) $(if $(BASE),--base $(BASE))

.PHONY: aws-template
aws-template: $(STAMP) ## regenerate deploy/aws/rising-stars.yaml and docs/deploy.md's IAM policies (dev/risingstars/dev/aws_stack.py)
	$(BIN)/python -m risingstars.dev.aws_stack write

.PHONY: preflight
preflight: $(STAMP) ## before an install: read-only checks of the cluster and AWS account (VALUES='-f values-eks.yaml -f values-stack.yaml')
	$(BIN)/python -m risingstars.dev.preflight $(VALUES)

.PHONY: chart-docs
chart-docs: $(STAMP) ## regenerate the values table of charts/rising-stars/README.md (from values.yaml + schema)
	$(BIN)/python charts/chart_docs.py
