#!/usr/bin/env bash
# Every public function that returns int says what it returns: the comment
# block right above its declaration (or above the group of declarations and
# callback typedefs it belongs to, with no blank line between) has a
# "Returns" sentence, as in
#     * Returns 0, CKPT_ENOTFOUND (no such step), CKPT_ENOMEM.
# (STYLE.md: zstd's lib/zstd.h). Lists the offenders and fails otherwise.
# Usage: returns.sh HEADER...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 HEADER..." >&2; exit 2; }
awk '
FNR == 1 { in_cmt = 0; attached = 0; in_decl = 0; cmt = "" }
in_cmt {
	cmt = cmt "\n" $0
	if ($0 ~ /\*\//) { in_cmt = 0; attached = 1 }
	next
}
/^[ \t]*\/\*/ && !in_decl {
	cmt = $0
	if ($0 ~ /\*\//) attached = 1; else in_cmt = 1
	next
}
/^typedef / && !in_decl { in_decl = ($0 !~ /;/); next }
/^CKPT_API / {
	in_decl = ($0 !~ /;/)
	if ($0 ~ /^CKPT_API int [a-z_][a-z0-9_]*[ \t]*\(/) {
		n++
		name = $0
		sub(/^CKPT_API int /, "", name)
		sub(/[ \t]*\(.*/, "", name)
		if (!(attached && cmt ~ /Returns/) && $0 !~ /\/\*.*Returns.*\*\//) {
			bad++
			printf "%s:%d: %s: no \"Returns\" in its comment\n", FILENAME, FNR, name
		}
	}
	next
}
in_decl { if ($0 ~ /;/) in_decl = 0; next }
{ attached = 0 }
END {
	if (bad) {
		printf "%d of %d public int functions do not say what they return\n", bad, n
		exit 1
	}
	printf "returns: %d public int functions, each says what it returns\n", n
}
' "$@"
