#!/usr/bin/env bash
# The TypeScript client: generated from openapi/invites.json with openapi-typescript, called
# through openapi-fetch, driving clients/LIFECYCLE.md against a running demo server.
#
#   clients/typescript/run.sh [--out DIR] BASE_URL DEMO_JSON
#
# DEMO_JSON is the file `invites serve --demo --demo-out FILE` wrote. Everything it installs,
# generates or compiles goes under OUT (default target/clients/typescript); nothing is written
# into the source tree.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../target/clients/typescript"

usage() { echo "usage: $0 [--out DIR] BASE_URL DEMO_JSON" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || usage
base_url="$1"
demo_json="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
[ -f "$demo_json" ] || { echo "typescript: no demo file $2" >&2; exit 2; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/logs"
mkdir -p "$log" "$out/generated"

step() { echo "typescript: $*" >&2; }
fail() { echo "typescript: FAILED: $*" >&2; exit 1; }

# 1. Dependencies: `npm ci` from the committed lock, under OUT; skipped when OUT already holds
#    an install of the same package.json and lock.
if cmp -s "$here/package.json" "$out/package.json" \
  && cmp -s "$here/package-lock.json" "$out/package-lock.json" \
  && [ -f "$out/node_modules/.package-lock.json" ] \
  && [ -x "$out/node_modules/.bin/openapi-typescript" ] \
  && [ -x "$out/node_modules/.bin/tsc" ]; then
  :
else
  step "npm ci into $out/node_modules"
  rm -rf "$out/node_modules"
  cp "$here/package.json" "$here/package-lock.json" "$out/"
  if ! (cd "$out" && timeout 240 npm ci --no-audit --no-fund --loglevel=error >"$log/npm-ci.log" 2>&1); then
    cat "$log/npm-ci.log" >&2
    rm -f "$out/package-lock.json"
    fail "npm ci (log: $log/npm-ci.log)"
  fi
fi

# 2. Generate the types. Any line the generator prints besides its banner and its "done" line
#    is a warning, and fails the run unless README.md's "Generator warnings" section lists it.
gen_log="$log/openapi-typescript.log"
if ! (cd "$here" && NO_COLOR=1 FORCE_COLOR=0 timeout 60 "$out/node_modules/.bin/openapi-typescript" \
  ../../openapi/invites.json -o "$out/generated/schema.d.ts" >"$gen_log" 2>&1); then
  cat "$gen_log" >&2
  fail "openapi-typescript on openapi/invites.json"
fi
allowed="$(awk '/^## Generator warnings/{on=1; next} /^## /{on=0} on' "$here/README.md" \
  | sed -n 's/^- `\([^`]*\)`.*/\1/p')"
unexplained=()
while IFS= read -r line; do
  line="$(printf '%s' "$line" | sed 's/\x1b\[[0-9;]*m//g; s/^[[:space:]]*//; s/[[:space:]]*$//')"
  [ -n "$line" ] || continue
  case "$line" in
    "✨ openapi-typescript "*) continue ;;
    "🚀 "*" → "*) continue ;;
  esac
  explained=no
  if [ -n "$allowed" ]; then
    while IFS= read -r pattern; do
      [ -n "$pattern" ] || continue
      case "$line" in *"$pattern"*) explained=yes; break ;; esac
    done <<<"$allowed"
  fi
  [ "$explained" = yes ] || unexplained+=("$line")
done <"$gen_log"
if [ ${#unexplained[@]} -gt 0 ]; then
  printf '  %s\n' "${unexplained[@]}" >&2
  fail "openapi-typescript printed ${#unexplained[@]} warning(s) not explained in clients/typescript/README.md (\"Generator warnings\")"
fi

# 3. Type-check (strict) and compile. OUT/tsconfig.json extends the committed one and points
#    its mappings (the generated schema, openapi-fetch, @types) at this OUT.
cat >"$out/tsconfig.json" <<JSON
{
  "extends": "$here/tsconfig.json",
  "compilerOptions": {
    "rootDir": "$here/src",
    "outDir": "$out/dist",
    "typeRoots": ["$out/node_modules/@types"],
    "paths": {
      "invites-schema": ["$out/generated/schema.d.ts"],
      "openapi-fetch": ["$out/node_modules/openapi-fetch/dist/index.d.mts"]
    }
  },
  "include": ["$here/src/**/*.ts"]
}
JSON
rm -rf "$out/dist"
if ! timeout 120 "$out/node_modules/.bin/tsc" --strict -p "$out/tsconfig.json" >"$log/tsc.log" 2>&1; then
  cat "$log/tsc.log" >&2
  fail "tsc --strict"
fi

# 4. The lifecycle (OUT/package.json says "type": "module"; openapi-fetch resolves from
#    OUT/node_modules). Bounded: the driver stops itself after 45 s, `timeout` after 55 s.
exec timeout 55 node "$out/dist/lifecycle.js" "$base_url" "$demo_json"
