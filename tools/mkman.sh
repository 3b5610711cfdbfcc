#!/usr/bin/env bash
# tools/mkman.sh — man pages from the programs' own --help (one source: what
# `ckpt help CMD` and `ckptfs --help` print is what the man page says).
#
#   mkman.sh ckpt BIN VERSION     > ckpt.1     every command's --help
#   mkman.sh ckptfs BIN VERSION   > ckptfs.8   ckptfs --help
set -euo pipefail
what=$1 bin=$2 version=$3

# roff-safe literal text: backslashes, and lines starting with . or '
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

case $what in
ckpt)
	help=$("$bin" --help)
	cat <<EOT
.TH CKPT 1 "" "ckptfs $version" "User Commands"
.SH NAME
ckpt \\- save, inspect, restore and manage Orbax-style checkpoints
.SH SYNOPSIS
.nf
$(printf '%s\n' "$help" | sed -n '1,/^$/p' | sed 's/^usage: //' | sed '/^$/d' | esc)
.fi
.SH DESCRIPTION
.nf
$(printf '%s\n' "$help" | sed -n '/^commands:/,$p' | esc)
.fi
.SH COMMANDS
EOT
	for cmd in $(printf '%s\n' "$help" | awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }'); do
		[ "$cmd" = mount ] && continue # its help is ckptfs(8)
		printf '.SS %s\n.nf\n' "$cmd"
		"$bin" "$cmd" --help | sed 's/^usage: //' | esc
		printf '.fi\n'
	done
	cat <<'EOT'
.SS mount
.nf
ckpt mount ROOT MNT [ckptfs options]: runs ckptfs(8) with the same arguments.
.fi
.SH EXIT STATUS
0 success; 1 error (one line "ckpt: MESSAGE" on stderr naming the file, step, key
or leaf); 2 usage error.
.SH SEE ALSO
.BR ckptfs (8);
docs/cli.md in the source tree.
EOT
	;;
ckptfs)
	cat <<EOT
.TH CKPTFS 8 "" "ckptfs $version" "System Administration"
.SH NAME
ckptfs \\- mount a checkpoint root as a directory tree (FUSE)
.SH SYNOPSIS
.nf
ckptfs ROOT MOUNTPOINT [-f] [-d] [-o opt,...]
fusermount3 -u MOUNTPOINT
.fi
.SH DESCRIPTION
.nf
$("$bin" --help | sed '1d' | esc)
.fi
.SH EXIT STATUS
0 after a clean unmount; 1 when ROOT or MOUNTPOINT cannot be used (the message says
why); 2 usage error.
.SH SEE ALSO
.BR ckpt (1),
.BR fusermount3 (1);
docs/fs.md in the source tree.
EOT
	;;
*)
	echo "usage: mkman.sh ckpt|ckptfs BIN VERSION" >&2
	exit 2
	;;
esac
