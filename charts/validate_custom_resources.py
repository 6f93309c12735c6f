"""Validates the custom resources in rendered manifests, which kubernetes-validate cannot.

Usage: validate_custom_resources.py SCHEMAS_DIR FILE...

- kinds of third-party CRDs (KEDA, Prometheus Operator, AWS LBC) against SCHEMAS_DIR/crds/
  <group>/<kind>_<version>.json;
- kinds defined by a CustomResourceDefinition in the same file (the chart's own crds/) against
  that CRD's openAPIV3Schema;
- every other kind must be one kubernetes-validate knows, so nothing goes unvalidated.
Exit status 1 with one line per problem.
"""

import json
import pathlib
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv


def own_crd_schemas(docs):
    schemas = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            api_version = f"{spec['group']}/{version['name']}"
            schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def check_file(path, crd_dir):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    own = own_crd_schemas(docs)
    problems = []
    for doc in docs:
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = f"{path.name}: {kind}/{doc.get('metadata', {}).get('name')}"
        group, _, version = api_version.rpartition("/")
        schema_file = crd_dir / group / f"{kind.lower()}_{version}.json"
        if (api_version, kind) in own:
            schema = own[(api_version, kind)]
        elif group and schema_file.is_file():
            schema = json.loads(schema_file.read_text())
        else:
            try:
                kv.validate(doc, kv.latest_version(), strict=True)
            except kv.SchemaNotFoundError:
                problems.append(f"{name}: no schema for {api_version} {kind}")
            except jsonschema.ValidationError:
                pass  # reported by the kubernetes-validate run itself
            continue
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
        for error in errors:
            where = ".".join(str(p) for p in error.absolute_path) or "<root>"
            problems.append(f"{name}: {where}: {error.message}")
        if not errors:
            print(f"ok {name}")
    return problems


def main():
    crd_dir = pathlib.Path(sys.argv[1]) / "crds"
    if not crd_dir.is_dir():
        sys.exit(f"CRD schemas not found in {crd_dir}")
    problems = []
    for arg in sys.argv[2:]:
        problems += check_file(pathlib.Path(arg), crd_dir)
    for problem in problems:
        print(f"ERROR {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
