# bash completion for smdlm (installed as share/bash-completion/completions/smdlm).
# Commands and subcommands are listed here; each command's flags are read from its own
# `--help`, so they never go stale. Arguments of flags and positionals complete as files.

_smdlm_subcommands() {
    case $1 in
        eval) echo "ppl genppl mauve code sweep" ;;
        data) echo "prepare export" ;;
        bench) echo "forward train linear peak q8" ;;
        tokenizer) echo "train" ;;
    esac
}

_smdlm() {
    local cur=${COMP_WORDS[COMP_CWORD]} prog=${COMP_WORDS[0]}
    local commands="generate chat serve forward eval plot grad data train tokenizer tokenize merge quantize convert bench"
    if [ "$COMP_CWORD" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$commands --version --help" -- "$cur")
        return
    fi
    local cmd=${COMP_WORDS[1]} subs sub=
    subs=$(_smdlm_subcommands "$cmd")
    if [ -n "$subs" ]; then
        if [ "$COMP_CWORD" -eq 2 ]; then
            mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
            return
        fi
        sub=${COMP_WORDS[2]}
    fi
    if [[ $cur == -* ]]; then
        local flags
        # shellcheck disable=SC2086  # an empty $sub is no argument
        flags=$("$prog" "$cmd" $sub --help 2>/dev/null | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
        mapfile -t COMPREPLY < <(compgen -W "$flags --help" -- "$cur")
        return
    fi
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}
complete -o filenames -F _smdlm smdlm
