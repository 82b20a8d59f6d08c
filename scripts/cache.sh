# Sourced by the build scripts (build-qemu.sh, guest/build-image.sh): the
# shared cache of expensive builds, outside the clone, and its locks.
# Expects msg() and die() to be defined by the caller.

# vgpu_cache_dir SUBDIR: prints the absolute cache folder SUBDIR ("" for the
# top), creating it. $VGPU_CACHE_DIR (default /var/cache/vgpu) must be
# writable when set; the default falls back to ~/.cache/vgpu for non-root.
vgpu_cache_dir() {
    local cache=${VGPU_CACHE_DIR:-/var/cache/vgpu}
    if ! mkdir -p "$cache/$1" 2>/dev/null || [ ! -w "$cache/$1" ]; then
        [ -n "${VGPU_CACHE_DIR:-}" ] && die "cache dir $cache is not writable"
        cache=${XDG_CACHE_HOME:-$HOME/.cache}/vgpu
        mkdir -p "$cache/$1" || die "cannot create $cache/$1"
    fi
    (cd "$cache/$1" && pwd)
}

# vgpu_cache_lock FILE: holds an exclusive lock on FILE (fd 9) for the rest
# of the script, so several clones and parallel `make` runs sharing the
# cache do one download/build at a time.
vgpu_cache_lock() {
    exec 9>"$1"
    if ! flock -n 9; then
        msg "waiting for another $(basename "$0") holding $1"
        flock 9
    fi
}
