#!/usr/bin/env bash
# Validates what the operator renders against the Kubernetes schemas
# (kubernetes-validate, strict: unknown fields fail), and the sample custom
# resources against the CRDs in crds/. Installs its Python tools into
# target/py on first use. Run from the repository root: make test runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION="${KUBE_VERSION:-1.32.0}"
VENV=target/py
if [ ! -x "$VENV/bin/kubernetes-validate" ] || ! "$VENV/bin/python" -c 'import helm_python' 2>/dev/null; then
    echo "validate-manifests: installing kubernetes-validate and helm-python-sdk into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.*' pyyaml jsonschema helm-python-sdk || {
        echo "validate-manifests: cannot install kubernetes-validate / helm-python-sdk from PyPI; manifests NOT validated" >&2
        exit 1
    }
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run --locked -q -p thesa-operator -- render \
    -f samples/thesadeployment.yaml samples/definitions --specs specs >"$out/rendered.yaml"
# The invalid sample must be refused (exit 1) and the rest still render.
set +e
cargo run --locked -q -p thesa-operator -- render -f samples --specs specs >"$out/with-invalid.yaml" 2>"$out/with-invalid.err"
code=$?
set -e
if [ "$code" != 1 ]; then
    echo "validate-manifests: render with the invalid sample exited $code, expected 1" >&2
    cat "$out/with-invalid.err" >&2
    exit 1
fi

"$VENV/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" "$out/rendered.yaml" "$out/with-invalid.yaml"
"$VENV/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" crds/*.yaml

"$VENV/bin/python" - <<'PY'
import glob, sys, yaml, jsonschema

schemas = {}
for path in glob.glob("crds/*.yaml"):
    crd = yaml.safe_load(open(path))
    schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

def strict(schema):
    """Closes objects that list their properties, as the API server's
    strict field validation does (unknown fields are errors)."""
    if isinstance(schema, dict):
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema = dict(schema, additionalProperties=False)
        return {k: strict(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema

failed = False
count = 0
for path in sorted(glob.glob("samples/**/*.yaml", recursive=True)):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in schemas:
            continue
        count += 1
        schema = strict(schemas[doc["kind"]])
        schema["properties"]["metadata"] = {"type": "object"}
        schema["properties"]["apiVersion"] = {"type": "string"}
        schema["properties"]["kind"] = {"type": "string"}
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            failed = True
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"{path}: {doc['kind']} {doc['metadata']['name']}: {where}: {error.message}")
if failed:
    sys.exit(1)
print(f"validate-manifests: {count} sample custom resources match the CRD schemas")
PY
# The Helm chart: rendered under several value sets (Helm v4's engine via
# helm-python-sdk), linted, schema/CRD/RBAC checks, then the Kubernetes schemas.
"$VENV/bin/python" scripts/validate-chart.py "$out"
"$VENV/bin/kubernetes-validate" --strict -k "$KUBE_VERSION" "$out"/chart-*.yaml >/dev/null
echo "validate-manifests: rendered manifests, CRDs and the chart are valid for Kubernetes $KUBE_VERSION"
