#!/bin/sh
# Stand-in for the depmod-rs binary that runs the reference kmods instead: `--compat 30` selects
# kmod 30, anything else kmod 34. Used to check the conformance harness itself:
#
#   DEPMOD_RS_BIN=$PWD/scripts/kmod-as-depmod-rs.sh cargo test --test conformance
#
# must pass, since every comparison then pits a reference against itself.
CACHE="${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}"
if [ "$1" = --compat ] && [ "$2" = 30 ]; then
    shift 2
    exec "$CACHE/bin/depmod-kmod30" "$@"
fi
exec "$CACHE/bin/depmod-kmod34" "$@"
