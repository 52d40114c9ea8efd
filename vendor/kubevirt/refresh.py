#!/usr/bin/env python3
"""Refreshes the KubeVirt API files the tests use, from a KubeVirt source tree or release.

    python3 vendor/kubevirt/refresh.py --swagger KUBEVIRT/api/openapi-spec/swagger.json \
        [--crd VIRTUALMACHINES_CRD_YAML] --source "KubeVirt vX.Y.Z (commit ...)"

Writes, beside this script:
  swagger-virtualmachine.json  the definitions of KubeVirt's swagger.json that v1.VirtualMachine
                               reaches through $ref (what `render` output is validated against),
                               unchanged, with the source recorded in info.x-catalyst-source;
  virtualmachines-crd.yaml     copied from --crd when given: a VirtualMachine CRD whose structural
                               schema follows the same swagger (the emulator installs it, so the
                               API server validates and prunes VirtualMachines as KubeVirt's would).
Then update the version line in README.md beside this script.
"""
import argparse
import json
import pathlib
import shutil

ROOTS = ["v1.VirtualMachine"]
HERE = pathlib.Path(__file__).resolve().parent


def references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.removeprefix("#/definitions/")
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def reachable(definitions, roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise SystemExit(f"$ref to {name}, which the swagger does not define")
        seen.add(name)
        todo.extend(references(definitions[name]))
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swagger", required=True, type=pathlib.Path)
    parser.add_argument("--crd", type=pathlib.Path)
    parser.add_argument("--source", required=True, help="the KubeVirt version and commit the files come from")
    args = parser.parse_args()
    swagger = json.loads(args.swagger.read_text())
    names = reachable(swagger["definitions"], ROOTS)
    subset = {
        "swagger": swagger["swagger"],
        "info": {**swagger.get("info", {}), "x-catalyst-source": args.source},
        "definitions": {name: swagger["definitions"][name] for name in sorted(names)},
    }
    (HERE / "swagger-virtualmachine.json").write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    print(f"swagger-virtualmachine.json: {len(names)} of {len(swagger['definitions'])} definitions")
    if args.crd:
        shutil.copyfile(args.crd, HERE / "virtualmachines-crd.yaml")
        print("virtualmachines-crd.yaml: copied")


if __name__ == "__main__":
    main()
