#!/usr/bin/env bash
# make chart-check: everything CI proves about the deployment without a cluster.
#   1. helm lint --strict, helm 3 and helm 4, every values file
#   2. helm template of each -> kubernetes-validate --strict (1.31 and the newest bundled),
#      custom resources against their CRD schemas
#   3. checkov on each rendered output (zero failed checks; skips are justified in the chart)
#   4. skaffold.yaml against the v4beta14 schema, hadolint on the Dockerfiles,
#      values.schema.json and k8s/base up to date, k8s/ kustomizations valid
#   5. the chart's invariant tests (tests/chart)
# Expects the dev tools (.venv/bin) on PATH; installs helm, kubectl and checkov itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/rising-stars"
# Vendored copy of ../shared/schemas (checked against it below when present).
SCHEMAS="${RS_SCHEMAS_DIR:-$ROOT/charts/schemas}"
SHARED_SCHEMAS="$ROOT/../shared/schemas"
NAMESPACE=rising-stars
BIN="$(bash "$ROOT/charts/tools.sh")"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
PYTHON="${PYTHON:-python}"

step() { printf '\n== %s\n' "$*"; }
[[ -d "$SCHEMAS/crds" ]] || { echo "CRD schemas not found in $SCHEMAS (set RS_SCHEMAS_DIR)" >&2; exit 1; }

# name -> values file arguments (base has none).
declare -A VALUES=([base]="" [kind]="-f $CHART/values-kind.yaml" [eks]="-f $CHART/values-eks.yaml")
for f in "$CHART"/ci/*-values.yaml; do
  VALUES["ci-$(basename "$f" -values.yaml)"]="-f $f"
done
NAMES=$(printf '%s\n' "${!VALUES[@]}" | sort)

if [[ -d "$SHARED_SCHEMAS" ]]; then
  step "charts/schemas matches ../shared/schemas"
  diff -r --exclude=README.md "$SHARED_SCHEMAS" "$ROOT/charts/schemas" && echo "ok"
fi

step "values.schema.json generated from charts/values_schema.py"
"$PYTHON" "$ROOT/charts/values_schema.py" --check

step "helm lint --strict (helm 3 and helm 4)"
for helm in helm3 helm4; do
  for name in $NAMES; do
    # shellcheck disable=SC2086
    "$BIN/$helm" lint --strict --quiet "$CHART" --namespace "$NAMESPACE" ${VALUES[$name]} >"$OUT/lint.log" 2>&1 \
      || { cat "$OUT/lint.log"; echo "FAIL $helm lint $name" >&2; exit 1; }
    echo "ok $helm lint $name"
  done
done

step "helm template (helm 3 and helm 4)"
for name in $NAMES; do
  # shellcheck disable=SC2086
  "$BIN/helm3" template rising-stars "$CHART" --namespace "$NAMESPACE" --include-crds ${VALUES[$name]} >"$OUT/$name.yaml"
  # shellcheck disable=SC2086
  "$BIN/helm4" template rising-stars "$CHART" --namespace "$NAMESPACE" --include-crds ${VALUES[$name]} >/dev/null
  echo "ok template $name ($(grep -c '^kind:' "$OUT/$name.yaml") objects)"
done

LATEST="$("$PYTHON" -c 'from kubernetes_validate.utils import latest_version; print(latest_version())')"
step "kubernetes-validate --strict (1.31 and $LATEST) + custom resources"
"$BIN/kubectl" kustomize "$ROOT/k8s/kind/deps" >"$OUT/k8s-kind-deps.yaml"
"$BIN/kubectl" kustomize "$ROOT/k8s/base" >"$OUT/k8s-base.yaml"
for file in "$OUT"/*.yaml; do
  for version in 1.31 "$LATEST"; do
    # --no-warn hides "no schema" notices; validate_custom_resources.py fails on those itself.
    kubernetes-validate --strict --quiet --no-warn -k "$version" "$file"
  done
done
"$PYTHON" "$ROOT/charts/validate_custom_resources.py" "$SCHEMAS" "$OUT"/*.yaml >"$OUT/crd.log" \
  || { grep -v '^ok ' "$OUT/crd.log"; exit 1; }
echo "ok $(grep -c '^ok ' "$OUT/crd.log") custom resources"
echo "ok every object valid"

step "checkov (one run over every rendered values file)"
checkov_args=()
for name in $NAMES; do checkov_args+=(-f "$OUT/$name.yaml"); done
BC_SKIP_MAPPING=TRUE "$BIN/checkov" --quiet --compact --skip-download --framework kubernetes \
  "${checkov_args[@]}" >"$OUT/checkov.log" 2>&1 || { cat "$OUT/checkov.log"; echo "FAIL checkov" >&2; exit 1; }
grep -E 'Passed checks|Failed checks' "$OUT/checkov.log" || true

step "skaffold.yaml schema"
check-jsonschema --schemafile "$SCHEMAS/skaffold-v4beta14.json" "$ROOT/skaffold.yaml"

step "hadolint"
hadolint "$ROOT"/services/Dockerfile && echo "ok services/Dockerfile"

step "k8s/base up to date"
bash "$ROOT/charts/render-k8s.sh" --check

step "chart invariants (tests/chart)"
"$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/chart"
