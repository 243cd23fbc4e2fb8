#!/usr/bin/env python3
"""Judges the mock's answers to real documents with an independent validator.

Reads the JSON lines the mock's `realworld` test writes (target/mock-realworld/answers.jsonl):
each names a document, the documented response (path template, method, status key, media type)
and the body the mock sent. Each JSON body is validated against that response's schema by
`openapi-schema-validator` (OAS 3.0 read rules, or OAS 3.1), formats checked, with the document's
own files resolved by `referencing` and YAML read as YAML 1.2 (ruamel.yaml), none of it the
mock's code.

One OpenAPI rule has no JSON Schema keyword: a `discriminator` picks the `oneOf` alternative
(Atlas's alternatives differ only in it, and each is `allOf` its parent, which a JSON Schema
validator would follow forever). Before validating, each discriminated `oneOf` is rewritten into
the JSON Schema that says the same: each alternative also requires its discriminator value, and
its reference back to the parent points to the parent without the `oneOf`.

Exit status 1, with the failures listed, when any body breaks its schema.
"""

import copy
import os
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urljoin
from urllib.request import url2pathname

import regex
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30ReadValidator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012
from ruamel.yaml import YAML

def ecma_pattern(validator, patrn, instance, schema):
    """`pattern` with the `regex` module: Python's `re` has no `\\p{L}` (Atlas uses it)."""
    if not validator.is_type(instance, "string"):
        return
    try:
        compiled = regex.compile(patrn)
    except regex.error:
        return  # a pattern no engine here can run is not judged
    if not compiled.search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def with_ecma_patterns(cls):
    return validators.extend(cls, {"pattern": ecma_pattern})


YAML12 = YAML(typ="safe", pure=False)
YAML12.version = (1, 2)


def load(path):
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith(("{", "[")):
        return json.loads(text)
    return YAML12.load(text)


def pointer(doc, fragment):
    node = doc
    if not fragment:
        return node
    for token in unquote(fragment).lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def stringify_keys(node):
    """YAML may give integer keys (`200:`); JSON documents have text keys."""
    if isinstance(node, dict):
        return {str(k): stringify_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [stringify_keys(v) for v in node]
    return node


def inline_property_maps(doc, file_uri, load_uri):
    """DigitalOcean writes a whole `properties` map as a `$ref`; JSON Schema has no such thing,
    so the map it names is put in its place (resolved against the file it is written in)."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict) and list(props) == ["$ref"] and isinstance(props["$ref"], str):
                target = urljoin(file_uri, props["$ref"])
                target_file, _, fragment = target.partition("#")
                node["properties"] = pointer(load_uri(target_file), fragment)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def rewrite_discriminators(doc):
    """Encodes discriminated oneOfs of components/schemas as plain JSON Schema (see above)."""
    schemas = doc.get("components", {}).get("schemas", {})
    prefix = "#/components/schemas/"
    parents = {
        name: s for name, s in list(schemas.items())
        if isinstance(s, dict) and "discriminator" in s and ("oneOf" in s or "anyOf" in s)
    }
    for name, parent in parents.items():
        disc = parent["discriminator"]
        prop = disc.get("propertyName")
        key = "oneOf" if "oneOf" in parent else "anyOf"
        branches = parent[key]
        mapping = disc.get("mapping") or {}
        base = {k: v for k, v in parent.items() if k not in ("oneOf", "anyOf", "discriminator")}
        base_name = name + "__base"
        schemas[base_name] = base
        rewritten = []
        for b in branches:
            ref = b.get("$ref", "") if isinstance(b, dict) else ""
            names = [m for m, target in mapping.items() if target == ref or target == ref[len(prefix):]]
            if ref.startswith(prefix) and not names:
                names = [ref[len(prefix):]]
            if not names or not prop:
                rewritten.append(b)
                continue
            rewritten.append({"allOf": [{"properties": {prop: {"enum": names}}, "required": [prop]}, b]})
            child = schemas.get(ref[len(prefix):]) if ref.startswith(prefix) else None
            if isinstance(child, dict):
                for part in child.get("allOf", []):
                    if isinstance(part, dict) and part.get("$ref") == prefix + name:
                        part["$ref"] = prefix + base_name
        parent[key] = rewritten


class Judge:
    def __init__(self, path):
        self.path = Path(path)
        self.base_uri = self.path.as_uri()
        self.root = stringify_keys(load(self.path))
        raw = {}

        def load_uri(file_uri):
            if file_uri not in raw:
                raw[file_uri] = stringify_keys(load(url2pathname(file_uri[len("file://"):])))
            return raw[file_uri]

        inline_property_maps(self.root, self.base_uri, load_uri)
        rewrite_discriminators(self.root)
        self.v31 = str(self.root.get("openapi", "")).startswith("3.1")
        spec = DRAFT202012 if self.v31 else DRAFT4
        files = {}

        def retrieve(uri):
            file_uri = uri.split("#")[0]
            if file_uri not in files:
                contents = copy.deepcopy(load_uri(file_uri))
                inline_property_maps(contents, file_uri, load_uri)
                files[file_uri] = contents
            return Resource.from_contents(files[file_uri], default_specification=spec)

        self.registry = Registry(retrieve=retrieve).with_resource(
            self.base_uri, Resource.from_contents(self.root, default_specification=spec))
        self.validators = {}
        base_cls = OAS31Validator if self.v31 else OAS30ReadValidator
        self.format_checker = base_cls.FORMAT_CHECKER
        self.cls = with_ecma_patterns(OAS31Validator if self.v31 else OAS30ReadValidator)

    def document(self, file_uri):
        if file_uri == self.base_uri:
            return self.root
        return self.registry.get_or_retrieve(file_uri).value.contents

    def step(self, base, ptr, node, key):
        """Descends into `key`, then follows `$ref`s (path items, operations and responses may
        be references, to other files too): the file, the JSON pointer and the value reached."""
        node = node[key]
        ptr = ptr + "/" + str(key).replace("~", "~0").replace("/", "~1")
        while isinstance(node, dict) and "$ref" in node:
            target = urljoin(base + "#" + ptr, node["$ref"])
            base, _, fragment = target.partition("#")
            ptr = unquote(fragment)
            node = pointer(self.document(base), fragment)
        return base, ptr, node

    def schema_ref(self, template, method, code, media):
        base, ptr, node = self.base_uri, "", self.root
        for key in ("paths", template, method, "responses", code, "content", media):
            base, ptr, node = self.step(base, ptr, node, key)
        if "schema" not in node:
            return None
        return {"$ref": base + "#" + quote(ptr + "/schema", safe="/~")}

    def validate(self, template, method, code, media, body):
        key = (template, method, code, media)
        if key not in self.validators:
            ref = self.schema_ref(template, method, code, media)
            self.validators[key] = None if ref is None else self.cls(
                ref, registry=self.registry, format_checker=self.format_checker)
        validator = self.validators[key]
        if validator is None:
            return None
        return next(validator.iter_errors(body), None)


def main():
    answers = Path(sys.argv[1] if len(sys.argv) > 1 else "target/mock-realworld/answers.jsonl")
    judges = {}
    checked = skipped = 0
    failures = []
    started = time.monotonic()
    per_doc = {}
    for line in answers.read_text().splitlines():
        a = json.loads(line)
        media = a["media"].split(";")[0].strip().lower()
        if not (media == "application/json" or media.endswith("+json")):
            skipped += 1
            continue
        doc = a["document"]
        if doc not in judges:
            judges[doc] = Judge(doc)
        try:
            error = judges[doc].validate(a["template"], a["method"], a["code"], a["media"], a["body"])
        except RecursionError:
            error = "the validator recursed without end"
        name = Path(doc).name
        per_doc.setdefault(name, [0, 0])
        per_doc[name][0] += 1
        checked += 1
        if error is not None:
            per_doc[name][1] += 1
            message = error.message[:200] if isinstance(error, ValidationError) else error
            where = "/".join(str(p) for p in getattr(error, "absolute_path", []))
            failures.append(f"{name} {a['operation']} {a['code']} {a['media']}: /{where}: {message}")
    for name, (n, bad) in sorted(per_doc.items()):
        print(f"  {name}: {n} bodies judged, {bad} invalid")
    print(f"openapi-schema-validator judged {checked} JSON bodies ({skipped} of other media types "
          f"not judged) in {time.monotonic() - started:.1f} s: {len(failures)} invalid")
    for f in failures[: int(os.environ.get("JUDGE_SHOW", "50"))]:
        print("  INVALID", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
