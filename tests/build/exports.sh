#!/usr/bin/env bash
# libckpt.so exports exactly the functions its public headers declare: an
# internal function that leaks into the ABI, a public declaration without
# CKPT_API (ckpt/common.h), or a declared function the library lacks fails
# make check. Usage: exports.sh LIBCKPT_SO HEADER...
set -euo pipefail
so=$1
shift
# Top-level function declarations: a line at column 0 naming ckpt_...( that is
# not a typedef, macro or static function.
decls=$(grep -hE '^[A-Za-z_].*\bckpt_[a-z0-9_]+[[:space:]]*\(' "$@" | grep -vE '^(typedef|#|static)')
unmarked=$(echo "$decls" | grep -v '^CKPT_API ' || true)
[ -z "$unmarked" ] || { printf 'public declarations without CKPT_API:\n%s\n' "$unmarked"; exit 1; }
declared=$(echo "$decls" | grep -oE '\bckpt_[a-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:]]*($//' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sort -u)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || { echo "exported by $so but not declared in its public headers:" $extra; exit 1; }
[ -z "$missing" ] || { echo "declared in the public headers but not exported by $so:" $missing; exit 1; }
echo "exports: $(echo "$exported" | wc -l) symbols, exactly the public declarations"
