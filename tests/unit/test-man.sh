#!/usr/bin/env bash
# The man pages against the programs: every long option of each program's
# --help is in its page's source (docs/man/*.scd) and every option the page
# lists is in --help; every key of vgpu-mediator.conf(5)'s [mediator]
# section is an option; vgpu-smi(1) names every --query-* field; scdoc built
# each page.
# usage: test-man.sh MAN_SRC_DIR MAN_BUILD_DIR VGPU_MEDIATOR VGPU_SMI VGPU_CLIENT
set -uo pipefail

src=$1 built=$2 mediator=$3 smi=$4 client=$5
fails=0
ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }

# Long options named in a text (not "--" alone, not a wildcard "--query-*").
long_opts() { sed -E 's/--[a-z0-9-]+\*//g' | grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u; }
# Options the page documents: *--name* in its source.
page_opts() { grep -oE -- '\*--[a-z][a-z0-9-]*[a-z0-9]\*' "$1" | tr -d '*' | sort -u; }

# check_page PROGRAM PAGE: both directions.
check_page() {
    local prog=$1 page=$src/$2.scd help missing extra
    help=$("$prog" --help 2>&1)
    [ -n "$help" ] || { not_ok "$(basename "$prog") --help says something"; return; }
    missing=$(comm -23 <(long_opts <<<"$help") <(page_opts "$page") | tr '\n' ' ')
    extra=$(comm -13 <(long_opts <<<"$help") <(page_opts "$page") | tr '\n' ' ')
    [ -z "$missing" ] && ok "$2: every long option of $(basename "$prog") --help" ||
        not_ok "$2 lacks options of --help: $missing"
    [ -z "$extra" ] && ok "$2: no option that --help does not have" ||
        not_ok "$2 documents options that --help does not have: $extra"
}

check_page "$mediator" vgpu-mediator.8
check_page "$smi" vgpu-smi.1
check_page "$client" vgpu-client.1

# vgpu-mediator.conf(5): "*key* = VALUE" entries of [mediator] are the options
# of --help, minus those the file refuses (command line only).
conf=$src/vgpu-mediator.conf.5.scd
keys=$(sed -n '/^# THE \[mediator\] SECTION/,/^# /p' "$conf" | grep -oE '^\*[a-z][a-z0-9-]*\* =' |
       tr -d '*= ' | sort -u)
opts=$("$mediator" --help 2>&1 | long_opts | sed 's/^--//' |
       grep -vxE 'config|check-config|status|help')
missing=$(comm -23 <(echo "$opts") <(echo "$keys") | tr '\n' ' ')
extra=$(comm -13 <(echo "$opts") <(echo "$keys") | tr '\n' ' ')
[ -z "$missing" ] && ok "vgpu-mediator.conf.5: a [mediator] key for every option" ||
    not_ok "vgpu-mediator.conf.5 lacks [mediator] keys: $missing"
[ -z "$extra" ] && ok "vgpu-mediator.conf.5: every [mediator] key is an option" ||
    not_ok "vgpu-mediator.conf.5 has keys that are no option: $extra"
for o in config check-config status help; do
    grep -qF "*$o*" "$conf" || not_ok "vgpu-mediator.conf.5 says where $o goes instead"
done

# vgpu-smi(1): every field of --help-query-vm and --help-query-gpu.
for q in vm gpu; do
    missing=""
    for f in $("$smi" --help-query-$q | sed -n 's/^  \([a-z][^ ]*\).*/\1/p'); do
        grep -qF "*$f*" "$src/vgpu-smi.1.scd" || missing+="$f "
    done
    [ -z "$missing" ] && ok "vgpu-smi.1: every field of --help-query-$q" ||
        not_ok "vgpu-smi.1 lacks --query-$q fields: $missing"
done

# scdoc's output: roff with the page's title.
for p in vgpu-mediator.8 vgpu-mediator.conf.5 vgpu-smi.1 vgpu-client.1; do
    name=${p%.*} sec=${p##*.}
    if [ -s "$built/$p" ] && grep -q "^\.TH \"$name\" \"$sec\"" "$built/$p"; then
        ok "$p built by scdoc"
    else
        not_ok "$p not built (scdoc, scripts/deps.sh build)"
    fi
done

echo "$fails failed"
[ $fails -eq 0 ]
