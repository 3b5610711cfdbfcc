# bash completion for ckpt (installed by `make install` as
# $(PREFIX)/share/bash-completion/completions/ckpt). Commands and options
# come from the program's own help (`ckpt --help`, `ckpt CMD --help`), paths
# inside a step from `ckpt complete WORD`, other paths from the shell.
_ckpt() {
	local cur=${COMP_WORDS[COMP_CWORD]} cmd="" i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$cmd" ] || [ "$cmd" = help ]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json --bytes --io-stats --help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "help $(ckpt --help 2>/dev/null |
				awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }')" -- "$cur")
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(ckpt "$cmd" --help 2>/dev/null |
			grep -oE -- '--[a-z][a-z-]*' | sort -u)" -- "$cur")
		return
	fi
	mapfile -t COMPREPLY < <(ckpt complete -- "$cur" 2>/dev/null)
	if [ ${#COMPREPLY[@]} -gt 0 ]; then
		compopt -o nospace 2>/dev/null
	else
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}
complete -F _ckpt ckpt
