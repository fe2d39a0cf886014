# Thesa on Kubernetes. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build run test manifests e2e crds render lint fmt bench bench-bff bench-backend bench-tracing bench-workflow images clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## Build both programs (debug)
	$(CARGO) build --workspace --locked

run: ## Serve the samples and the preview page on :8080 with live sample backends on :9001-9005 (embedded stores, development keys; prints what to try)
	$(CARGO) build --locked -q -p thesa-bff
	@echo
	@echo "thesa-bff is starting on http://localhost:8080 with config/config.yaml (Ctrl-C stops it),"
	@echo "with sample backends for orders-svc, inventory-svc and customers-svc on 127.0.0.1:9001-9003,"
	@echo "a files service on :9004 and a Prometheus-compatible API on :9005 (data in memory:"
	@echo "commands change it, a restart resets it)."
	@echo "Open http://localhost:8080/preview/ for the preview page (pick a role at the top)."
	@echo "In another shell, get a development token and call it:"
	@echo '  TOKEN=$$(target/debug/thesa-bff dev-token --sub alice --tenant acme --roles order_clerk)'
	@echo '  curl -s -H "Authorization: Bearer $$TOKEN" http://localhost:8080/ui/navigation'
	@echo '  curl -s -H "Authorization: Bearer $$TOKEN" "http://localhost:8080/ui/pages/orders.list/data?page_size=5&sort=total.amount&sort_dir=desc"'
	@echo '  curl -s -H "Authorization: Bearer $$TOKEN" "http://localhost:8080/ui/search?q=ORD-1001"'
	@echo '  curl -s -H "Authorization: Bearer $$TOKEN" -H "X-Idempotency-Key: k1" -X POST -H "Content-Type: application/json" \'
	@echo '       -d "{\"input\":{\"reason\":\"fail:ORDER_ALREADY_SHIPPED\"},\"route_params\":{\"id\":\"x\"}}" http://localhost:8080/ui/commands/orders.cancel'
	@echo "Roles are in config/policies.yaml (admin, viewer, order_clerk, ...)."
	@echo "Analytics (/api/analytics/query/*) come from the sample API; THESA_ANALYTICS_PROMETHEUS_URL"
	@echo "points them at a real Prometheus (docs/bff.md, Analytics)."
	@echo
	exec target/debug/thesa-bff serve --config config/config.yaml --sample-backends

test: ## Run every test that can run here (cargo-nextest when installed), then the manifest checks and e2e
	bash scripts/test-deps.sh
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --exclude thesa-e2e --locked --no-fail-fast; \
	else \
		$(CARGO) test --workspace --exclude thesa-e2e --locked --no-fail-fast; \
	fi
	$(MAKE) manifests
	$(MAKE) e2e

manifests: ## Validate rendered manifests, CRDs and sample CRs against the Kubernetes schemas
	bash scripts/validate-manifests.sh

e2e: ## End-to-end: the no-cluster pipeline (operator on the fake API → projected ConfigMaps → thesa-bff), then the real-cluster suite when KUBECONFIG is set
	bash scripts/test-deps.sh
	$(CARGO) build --locked -p thesa-bff
	$(CARGO) test --locked -p thesa-e2e -- --nocapture
	bash e2e/run.sh

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --locked -q -p thesa-operator -- crds --dir crds --reference docs/crd-reference.md
	cp crds/*.yaml charts/thesa-operator/crds/

render: ## Print what the operator would apply for the samples
	$(CARGO) run --locked -q -p thesa-operator -- render -f samples/thesadeployment.yaml samples/definitions --specs specs

lint: ## clippy with warnings as errors, and rustfmt --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) fmt --all -- --check

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Validation and reconcile benchmarks (release build; see BENCHMARKS.md)
	$(CARGO) bench --locked -p thesa-core --bench validate
	$(CARGO) bench --locked -p thesa-operator --bench reconcile

bench-bff: ## Load test of the BFF against a bare axum handler, 127.0.0.1 only (see BENCHMARKS.md)
	bash scripts/bench-bff.sh

bench-backend: ## What the BFF adds to backend calls, against direct calls, 127.0.0.1 only (see BENCHMARKS.md)
	bash scripts/bench-backend.sh

bench-tracing: ## p50 cost of OpenTelemetry tracing (off, sampling 1.0 and 0.1, dead collector), 127.0.0.1 only (see BENCHMARKS.md)
	bash scripts/bench-tracing.sh

bench-workflow: ## Workflow events/s and p99 with 2 BFFs on a throwaway PostgreSQL, 127.0.0.1 only (see BENCHMARKS.md)
	bash scripts/bench-workflow.sh

images: ## Build the thesa-bff and thesa-operator images (needs docker; version and commit baked in)
	@command -v docker >/dev/null || { echo "images: docker is not installed here; the Dockerfiles are Dockerfile.bff and Dockerfile.operator"; exit 1; }
	docker build -f Dockerfile.bff --build-arg VERSION=$$(cargo pkgid -p thesa-bff | sed 's/.*[#@]//') --build-arg COMMIT=$$(git rev-parse --short=12 HEAD) -t thesa-bff .
	docker build -f Dockerfile.operator -t thesa-operator .

clean: ## Remove build output
	$(CARGO) clean
