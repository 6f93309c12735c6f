#!/bin/sh
# What the release needs in a kind cluster before `helm install` (its pre-install migration Jobs
# wait for PostgreSQL): k8s/kind/deps applied, then PostgreSQL and LocalStack Available.
# skaffold runs it as the helm deployer's `hooks.before` (in the context it deploys to);
# by hand: sh k8s/kind/apply-deps.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
context=${SKAFFOLD_KUBE_CONTEXT:-kind-rising-stars}
kubectl --context "$context" apply -k "$here/deps"
kubectl --context "$context" -n rising-stars wait --for=condition=Available --timeout=5m \
  deployment/postgres deployment/localstack
