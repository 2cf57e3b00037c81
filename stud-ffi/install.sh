#!/bin/sh
# Installs libstud (shared and static library, stud.h, stud.pc) under a prefix.
#
#   cargo build --release -p stud-ffi
#   sh stud-ffi/install.sh /usr/local              # from target/release
#   sh stud-ffi/install.sh /opt/stud path/to/dir   # from another build directory
#
# Environment: LIBDIR (default PREFIX/lib), INCLUDEDIR (default PREFIX/include),
# DESTDIR (staging root for packagers; not written into stud.pc).
set -eu

usage() { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
prefix=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${2:-${CARGO_TARGET_DIR:-$root/target}/release}
libdir=${LIBDIR:-$prefix/lib}
includedir=${INCLUDEDIR:-$prefix/include}
destdir=${DESTDIR:-}

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
[ -n "$version" ] || { echo "$0: cannot find the version in $root/Cargo.toml" >&2; exit 1; }
major=${version%%.*}

for f in libstud.so libstud.a; do
    [ -f "$build/$f" ] || { echo "$0: $build/$f not found; run cargo build --release -p stud-ffi" >&2; exit 1; }
done

# What the static library needs from the system (rustc --print native-static-libs on Linux).
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

mkdir -p "$destdir$libdir/pkgconfig" "$destdir$includedir"
install -m 0755 "$build/libstud.so" "$destdir$libdir/libstud.so.$version"
ln -sf "libstud.so.$version" "$destdir$libdir/libstud.so.$major"
ln -sf "libstud.so.$major" "$destdir$libdir/libstud.so"
install -m 0644 "$build/libstud.a" "$destdir$libdir/libstud.a"
install -m 0644 "$here/include/stud.h" "$destdir$includedir/stud.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
    "$here/stud.pc.in" > "$destdir$libdir/pkgconfig/stud.pc"
echo "installed libstud $version under $destdir$prefix"
