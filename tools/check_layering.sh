#!/usr/bin/env bash
# check_layering.sh: derives the folder-to-folder include graph of the tree from its #include "..."
# lines and fails when an edge is not allowed (README "Architecture" gives the rules and why).
#   tools/check_layering.sh [--graph] [ROOT]   (ROOT defaults to the current directory)
# --graph prints every edge "from -> to (n includes)" and still checks. Exit 0 clean, 1 on a
# forbidden edge (each one printed with the file and line that makes it), 2 on bad usage.
set -euo pipefail

graph=0
if [[ ${1:-} == --graph ]]; then
    graph=1
    shift
fi
root=${1:-.}
[[ -d $root ]] || { echo "check_layering: no such folder: $root" >&2; exit 2; }
cd "$root"

# Folders of files that take part. Generated code (build/) and fixtures are not source.
mapfile -t files < <(find include common loaders quant tokenizer kernels engine tools tests \
                          -type f \( -name '*.c' -o -name '*.h' \) \
                          -not -path 'tests/fixtures/*' 2>/dev/null | sort)

# A file's room: kernels/<sub> and tools/cli are rooms of their own, tests/* is one room. Sets
# $room (no subshell: this runs for every file and include).
room_of() {
    local f=$1
    case $f in
    kernels/*/*) f=${f#kernels/}; room=kernels/${f%%/*} ;;
    tools/cli/*) room=tools/cli ;;
    *) room=${f%%/*} ;;
    esac
}

# Header basename -> path (the build passes every library folder with -I, so names are global;
# a header in the including file's own folder wins, as with the compiler).
declare -A header_at
for f in "${files[@]}"; do
    [[ $f == *.h ]] || continue
    b=${f##*/}
    [[ -z ${header_at[$b]:-} ]] && header_at[$b]=$f
done

# Shared kernel code that is not a backend (kernels/<sub> folders that any backend may use).
is_shared_kernels() { [[ $1 == kernels/clk ]]; }
is_backend() { [[ $1 == kernels/* ]] && ! is_shared_kernels "$1"; }
is_library() {
    case $1 in
    include | common | quant | loaders | tokenizer | kernels | kernels/* | engine) return 0 ;;
    *) return 1 ;;
    esac
}

# Sets $why to the reason an edge from -> to is forbidden (empty: allowed; no subshell). Library rooms, lowest first:
#   include < common < quant < loaders < tokenizer ; common < quant < kernels < kernels/clk <
#   backends ; engine on top of all of them ; tools and tests may use anything.
forbidden() {
    local from=$1 to=$2
    why=
    [[ $from == "$to" ]] && return 0
    if is_library "$from" && ! is_library "$to"; then
        why="the library must not include $to"; return 0
    fi
    case $from in
    include) why="the public header stands alone" ;;
    common) [[ $to == include ]] || why="common/ is the lowest room: it includes only include/" ;;
    quant) case $to in include | common) ;; loaders) why="quant -> loaders (quant sits below the loaders: no cycle)" ;;
           *) why="quant includes only common/ and include/" ;; esac ;;
    loaders) case $to in include | common | quant) ;; engine) why="loaders -> engine" ;;
             *) why="loaders include only common/, quant/ and include/" ;; esac ;;
    tokenizer) case $to in include | common | loaders) ;; engine) why="tokenizer -> engine" ;;
               *) why="the tokenizer includes only common/, loaders/ and include/" ;; esac ;;
    kernels) case $to in include | common | quant) ;;
             *) why="kernels/ (the interface and the reference) includes only common/ and quant/" ;; esac ;;
    kernels/*)
        if is_backend "$to"; then why="a backend or shared kernel code must not include a backend ($to)"
        elif is_shared_kernels "$from" && is_shared_kernels "$to"; then :
        else case $to in include | common | quant | kernels | kernels/*) ;;
             *) why="kernel code includes only kernels/, common/ and quant/" ;; esac
        fi ;;
    engine) if is_backend "$to"; then why="engine -> a concrete backend ($to): use kernels/backend.h"
            elif [[ $to == kernels/* ]]; then why="engine -> $to: use kernels/backend.h"; fi ;;
    esac
    return 0
}

declare -A edges
bad=0
# One grep over every file: "path:line:name" for each #include "name".
while IFS=: read -r f line name; do
    room_of "$f"
    from=$room
    if [[ -e ${f%/*}/$name ]]; then
        target=${f%/*}/$name
    else
        target=${header_at[${name##*/}]:-}
    fi
    [[ -n $target ]] || continue # a generated header (build/gen) or a system one
    room_of "$target"
    to=$room
    [[ $from == "$to" ]] && continue
    edges["$from -> $to"]=$((${edges["$from -> $to"]:-0} + 1))
    forbidden "$from" "$to"
    if [[ -n $why ]]; then
        echo "check_layering: $f:$line: #include \"$name\": $why" >&2
        bad=1
    fi
done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "${files[@]}" |
         sed -E 's/^([^:]+):([0-9]+):.*"([^"]+)".*/\1:\2:\3/')

# Backends also must not name another backend's table (an extern declaration needs no #include):
# only kernels/registry.c lists them all.
declare -A table_room
while IFS=: read -r f _ table; do
    room_of "$f"
    table_room[$table]=$room
done < <(grep -HnoE 'p3_backend_iface p3_backend_[a-z0-9_]+ *=' "${files[@]}" |
         sed -E 's/ *=$//; s/p3_backend_iface //')
while IFS=: read -r f line table; do
    [[ $f == kernels/registry.c ]] && continue
    room_of "$f"
    from=$room
    owner=${table_room[$table]:-}
    [[ -n $owner && $owner != "$from" ]] || continue
    if [[ $from == kernels || $from == kernels/* || $from == engine ]]; then
        echo "check_layering: $f:$line: names $table of $owner: go through the p3_be_* wrappers" >&2
        bad=1
    fi
done < <(grep -HnoE '\bp3_backend_[a-z0-9_]+\b' "${files[@]}" | grep -v 'p3_backend_iface' || true)

if ((graph)); then
    for e in "${!edges[@]}"; do printf '%s (%d)\n' "$e" "${edges[$e]}"; done | sort
fi
if ((bad)); then
    echo "check_layering: forbidden include edges (rules: README, Architecture)" >&2
    exit 1
fi
echo "check_layering: ${#files[@]} files, ${#edges[@]} folder edges, all allowed"
