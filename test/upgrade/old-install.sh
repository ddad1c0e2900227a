#!/usr/bin/env bash
# test/upgrade/old-install.sh DEST
#
# Builds every released version listed in test/upgrade/versions from this
# repository's history (or, in a clone without it, from the release's build
# files shipped as test/upgrade/pg_pipeline-VERSION.tar.gz: Makefile,
# control file, src/ and the install script) and lays each out as a PostgreSQL 15 installation of
# its own, DEST/VERSION/usr/{lib,share}/postgresql/15: a copy of the
# system's (PostgreSQL finds its files relative to its binaries, so a copy is
# a working installation) with that version's library, control file and
# scripts in place of the current ones. test/t/010_upgrade.pl starts a
# cluster on such a copy, as a user of the old package would have, then
# restarts it on the system's installation, as after a package upgrade, and
# runs ALTER EXTENSION UPDATE. Prints nothing on success.
set -euo pipefail
dest=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pgver=15
bindir=/usr/lib/postgresql/$pgver/bin
mkdir -p "$dest"
grep -v '^#' "$root/test/upgrade/versions" | while read -r version commit; do
    [ -n "$version" ] || continue
    tree=$dest/$version
    src=$dest/src-$version
    rm -rf "$tree" "$src"
    mkdir -p "$tree/usr/lib/postgresql" "$tree/usr/share/postgresql" "$src"
    # the release's own commit; a clone without that history (a shallow
    # one) uses the release's build files shipped beside this script
    if git -C "$root" -c safe.directory='*' cat-file -e "$commit^{commit}" 2>/dev/null; then
        git -C "$root" -c safe.directory='*' archive "$commit" | tar -x -C "$src"
    elif [ -f "$root/test/upgrade/pg_pipeline-$version.tar.gz" ]; then
        tar -xzf "$root/test/upgrade/pg_pipeline-$version.tar.gz" -C "$src"
    else
        echo "old-install: neither commit $commit nor test/upgrade/pg_pipeline-$version.tar.gz is here" >&2
        exit 1
    fi
    make -s -C "$src" PG_CONFIG="$bindir/pg_config" >"$src/build.log" 2>&1 ||
        { cat "$src/build.log" >&2; exit 1; }
    cp -a "/usr/lib/postgresql/$pgver" "$tree/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$pgver" "$tree/usr/share/postgresql/"
    rm -f "$tree/usr/share/postgresql/$pgver/extension/pg_pipeline"*
    cp "$src/pg_pipeline.so" "$tree/usr/lib/postgresql/$pgver/lib/pg_pipeline.so"
    cp "$src/pg_pipeline.control" "$src"/sql/pg_pipeline--*.sql \
        "$tree/usr/share/postgresql/$pgver/extension/"
    rm -rf "$src"
done
