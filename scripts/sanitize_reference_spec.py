#!/usr/bin/env python3
"""Derive a copy of the Atlas reference contract that Python's `re` can compile.

The reference uses `\\p{L}` and `\\p{N}` (Unicode letters and numbers) in the `orgName` and
`groupName` patterns; Python's `re` has no `\\p{...}` classes, so schemathesis refuses the file.
Inside a character class, `\\p{L}\\p{N}` is replaced with `\\w`: Unicode letters, numbers and
underscore in Python 3, a superset only by `_`, which those classes list anyway. Nothing else
changes. The copy is derived by this script, never by hand.

Usage: sanitize_reference_spec.py REFERENCE.json OUTPUT.json
"""
import json
import sys


def sanitize(node, changed):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str) and "\\p{" in value:
                new = value.replace("\\p{L}\\p{N}", "\\w")
                if "\\p{" in new:
                    raise SystemExit(f"unhandled Unicode class in pattern {value!r}")
                node[key] = new
                changed.append(value)
            else:
                sanitize(value, changed)
    elif isinstance(node, list):
        for item in node:
            sanitize(item, changed)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    changed = []
    sanitize(spec, changed)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"sanitized {len(changed)} pattern(s) into {sys.argv[2]}")


if __name__ == "__main__":
    main()
