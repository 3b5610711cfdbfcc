#!/usr/bin/env bash
# install.sh — `make install PREFIX=...` after a plain `make` (issue 16): ckpt.pc names the
# PREFIX given to install (not the default the build started with), so pkg-config points a
# program at the installed headers and library, which then builds and runs; the man pages
# ckpt(1) and ckptfs(8) are installed, render with man(1) and hold every command's help;
# the bash completion completes commands, options and paths inside a step.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

P="$T/opt/ckpt"
make -s -C "$REPO" B="$B" install PREFIX="$P" >"$T/make.out" 2>&1 || fail "make install: $(cat "$T/make.out")"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
[ "$(pkg-config --variable=prefix ckpt)" = "$P" ] || fail "ckpt.pc prefix: $(pkg-config --variable=prefix ckpt)"
pkg-config --cflags ckpt | grep -q -- "^-I$P/include" || fail "pkg-config --cflags: $(pkg-config --cflags ckpt)"
cat >"$T/v.c" <<'C'
#include <stdio.h>
#include <ckpt/ckpt.h>
int main(void) { printf("format %d.%d\n", CKPT_FORMAT_MAJOR, CKPT_FORMAT_MINOR); return ckpt_error_last() == NULL; }
C
# a sanitizer build's library needs the sanitizer's runtime in the program too
SAN=
nm "$P/lib/libckpt.a" >"$T/nm" 2>/dev/null || true
if grep -q __asan_init "$T/nm"; then SAN="-fsanitize=address,undefined"; fi
# shellcheck disable=SC2046,SC2086
cc $SAN -o "$T/v" "$T/v.c" $(pkg-config --cflags ckpt) "$P/lib/libckpt.a" $(pkg-config --libs-only-l --static ckpt | sed 's/-lckpt//') -lm -pthread ||
	fail "a program built with pkg-config's flags"
"$T/v" | grep -q '^format ' || fail "the program built against the install does not run"
pass "ckpt.pc names PREFIX=$P (not the build's default)"

for c in save restore ls tree meta cat get verify finalize rm gc wait status; do
	MANWIDTH=100 man -l "$P/share/man/man1/ckpt.1" 2>/dev/null | grep -qE "^ +ckpt $c " ||
		fail "ckpt(1) lacks the usage of ckpt $c"
done
MANWIDTH=100 man -l "$P/share/man/man8/ckptfs.8" 2>/dev/null | grep -q -- "-o log=FILE" ||
	fail "ckptfs(8) lacks -o log"
"$CKPT" help save | grep -qF -- "--skip-extra" || fail "ckpt help save"
MANWIDTH=100 man -l "$P/share/man/man1/ckpt.1" 2>/dev/null | grep -qF -- "--skip-extra" ||
	fail "ckpt(1) and ckpt help save disagree"
pass "man pages ckpt(1) and ckptfs(8) installed, generated from the --help texts"

mkdir -p "$T/src/state/params"
$PY -c 'import numpy as np, sys; np.save(sys.argv[1], np.zeros(3, "<f4"))' "$T/src/state/params/kernel.npy"
echo 1 >"$T/src/state/step"
"$CKPT" save "$T/root" 100 "$T/src" >/dev/null
# complete LINE: what the installed completion offers for the last word of LINE
complete_line() {
	PATH="$B:$PATH" bash -c '
		. "$1"; read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _ckpt; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$P/share/bash-completion/completions/ckpt" "$1" 2>/dev/null
}
complete_line "ckpt st" | grep -qx status || fail "completion of commands: $(complete_line "ckpt st")"
complete_line "ckpt save --me" | sort | tr '\n' ' ' | grep -qx -- "--metric --metrics " ||
	fail "completion of options: $(complete_line "ckpt save --me")"
[ "$(complete_line "ckpt tree $T/root/100/st")" = "$T/root/100/state/" ] || fail "completion of items"
[ "$(complete_line "ckpt cat $T/root/latest/state/params/k")" = "$T/root/latest/state/params/kernel" ] ||
	fail "completion of leaves: $(complete_line "ckpt cat $T/root/latest/state/params/k")"
complete_line "ckpt tree $T/ro" | grep -qx "$T/root" || fail "completion falls back to files"
pass "bash completion: commands, options, items and leaves of a step, files"
finish install
