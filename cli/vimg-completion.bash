# bash completion for vimg. The commands, their options and the format
# names come from vimg's own --help, so they are never out of date.

_vimg_formats()
{
    vimg --help 2>/dev/null | sed -n 's/^Formats://p'
}

_vimg()
{
    local cur prev words cword split
    # -s: "--output=json" and "if=disk.img" stay one word.
    _init_completion -s || return

    # The command is the first word that is not a global option.
    local i cmd="" sub=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --untrusted|--refs=*|--output=*|--image-opts) ;;
            --object|--output) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=${words[i]}
                elif [[ $cmd == iso && -z $sub ]]; then
                    sub=${words[i]}
                fi
                ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '--untrusted --refs=follow
                --refs=same-dir --refs=never --output=human --output=json
                --object --image-opts --help --version' -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(vimg --help 2>/dev/null |
                sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p')" \
                -- "$cur"))
        fi
        return
    fi
    if [[ $cmd == iso && -z $sub ]]; then
        COMPREPLY=($(compgen -W 'ls extract cat create cidata' -- "$cur"))
        return
    fi

    case $prev in
        -f|-O|-F)
            COMPREPLY=($(compgen -W "$(_vimg_formats)" -- "$cur"))
            return
            ;;
        -t|-T)
            COMPREPLY=($(compgen -W 'writeback unsafe writethrough none
                directsync' -- "$cur"))
            return
            ;;
        -r)
            if [[ $cmd == check ]]; then
                COMPREPLY=($(compgen -W 'leaks all' -- "$cur"))
                return
            fi
            ;;
        --output)
            COMPREPLY=($(compgen -W 'human json' -- "$cur"))
            return
            ;;
        --preallocation)
            COMPREPLY=($(compgen -W 'off metadata falloc full' -- "$cur"))
            return
            ;;
    esac
    $split && return
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(vimg $cmd $sub --help 2>/dev/null |
            grep -oE -- '(^|[[ ,])--?[A-Za-z][-A-Za-z]*=?' |
            sed 's/^[[ ,]//' | sort -u)" -- "$cur"))
        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
        return
    fi
    if [[ $cmd == dd ]]; then
        if [[ $cur != *=* ]]; then
            COMPREPLY=($(compgen -W 'if= of= bs= count= skip=' -- "$cur"))
            compopt -o nospace
        elif [[ $cur == if=* || $cur == of=* ]]; then
            local op=${cur%%=*}=
            cur=${cur#*=}
            _filedir
            COMPREPLY=("${COMPREPLY[@]/#/$op}")
        fi
        return
    fi
    _filedir
} &&
    complete -F _vimg vimg
