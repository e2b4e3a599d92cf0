#!/bin/bash
# Builds the Debian packages into target/debian/ with cargo-deb (installed if missing):
#   depmod-rs            the programs (stripped), manual pages, completions, docs,
#                        /etc/depmod-rs.conf (a conffile) and a kernel postrm hook
#   depmod-rs-as-depmod  makes `depmod` run depmod-rs system-wide (dpkg-divert of kmod's)
# Then runs lintian on them when it is installed (apt-get install lintian); a tag that is
# neither fixed nor overridden, with its reason, in packaging/lintian/ fails the script.
#
# Usage: scripts/package.sh [--no-lintian]
set -euo pipefail
cd "$(dirname "$0")/.."

run_lintian=yes
[ "${1:-}" = --no-lintian ] && run_lintian=no

if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb" >&2
    cargo install cargo-deb --locked
fi

# The divert package depends on exactly this build of depmod-rs.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if ! grep -q "^depends = \"depmod-rs (= $version-1), kmod\"" Cargo.toml; then
    echo "package: the as-depmod variant must depend on depmod-rs (= $version-1); update Cargo.toml" >&2
    exit 1
fi

cargo build --release --bins
cargo xtask man target/assets/man >/dev/null
cargo xtask completions target/assets/completions >/dev/null
# Manual pages compressed as Debian wants them (gzip -9n: no name, no time stamp).
rm -rf target/assets/deb
mkdir -p target/assets/deb/man1 target/assets/deb/man8
for page in target/assets/man/*.[18]; do
    section=${page##*.}
    gzip -9n -c "$page" >"target/assets/deb/man$section/${page##*/}.gz"
done

rm -f target/debian/depmod-rs_*.deb target/debian/depmod-rs-as-depmod_*.deb
cargo deb --no-build --output target/debian/
cargo deb --no-build --variant as-depmod --output target/debian/
ls -l target/debian/*.deb

if [ "$run_lintian" = yes ]; then
    if command -v lintian >/dev/null; then
        # Overrides ship in the packages; --fail-on warning makes any other tag fatal.
        lintian --fail-on error,warning --info target/debian/*.deb
        echo "package: lintian clean (remaining tags overridden in packaging/lintian/)" >&2
    else
        echo "package: lintian not installed; packages not checked" >&2
    fi
fi
