#!/bin/sh
# Fill fuzz/corpus/<target>/ with seed inputs taken from the reference trees in
# ${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}/trees (see scripts/fetch-references.sh), plus a few
# hand-written seeds for the files the trees do not ship (depmod.d, Module.symvers, System.map).
# fuzz/corpus/ is not committed. Safe to run again: existing seeds are kept.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEPMOD_RS_CACHE:-$HOME/.cache/depmod-rs}
corpus=$here/corpus
small=${SEED_MAX_KIB:-32}     # module seeds above this size only slow the fuzzer down
count=${SEED_MODULES:-24}     # module seeds per tree

mk() { mkdir -p "$corpus/$1"; }
for t in module_elf module_partial module_decompress index_read depmod_config modules_order \
         modules_builtin modules_builtin_modinfo module_symvers system_map; do
    mk "$t"
done

n=0
if [ -d "$cache/trees" ]; then
    for tree in "$cache"/trees/*/; do
        name=$(basename "$tree")
        kver=$(cat "$tree/KVER" 2>/dev/null || true)
        [ -n "$kver" ] || continue
        for moddir in "$tree/lib/modules/$kver" "$tree/usr/lib/modules/$kver"; do
            [ -d "$moddir" ] || continue
            for f in modules.order modules.builtin modules.builtin.modinfo; do
                [ -f "$moddir/$f" ] || continue
                target=$(echo "$f" | sed 's/^modules\.builtin\.modinfo$/modules_builtin_modinfo/; s/^modules\.builtin$/modules_builtin/; s/^modules\.order$/modules_order/')
                # Whole files are large; the first 4 KiB and a slice from the middle cover
                # every line shape while keeping inputs short.
                head -c 4096 "$moddir/$f" > "$corpus/$target/$name-head"
                size=$(wc -c < "$moddir/$f")
                tail -c +$((size / 2)) "$moddir/$f" | head -c 4096 > "$corpus/$target/$name-mid"
            done
            find "$moddir" -name '*.ko' -size -"${small}"k | sort | head -n "$count" |
                while read -r ko; do
                    cp "$ko" "$corpus/module_elf/$name-$(basename "$ko")"
                    cp "$ko" "$corpus/module_partial/$name-$(basename "$ko")"
                done
            find "$moddir" \( -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) \
                -size -"${small}"k | sort | head -n "$count" |
                while read -r ko; do
                    cp "$ko" "$corpus/module_decompress/$name-$(basename "$ko")"
                done
            n=$((n + 1))
        done
    done
fi

# Each compression format from a few plain modules, so module_decompress sees all three.
for ko in $(ls "$corpus"/module_elf/*.ko 2>/dev/null | head -n 4); do
    b=$(basename "$ko")
    command -v xz >/dev/null && xz -c --check=crc32 "$ko" > "$corpus/module_decompress/$b.xz"
    command -v zstd >/dev/null && zstd -q -c "$ko" > "$corpus/module_decompress/$b.zst"
    command -v gzip >/dev/null && gzip -c "$ko" > "$corpus/module_decompress/$b.gz"
done

# Indexes: the ones installed on this machine, if any.
for bin in /lib/modules/*/modules.*.bin; do
    [ -f "$bin" ] || continue
    [ "$(wc -c < "$bin")" -le 262144 ] || continue
    cp "$bin" "$corpus/index_read/$(basename "$(dirname "$bin")")-$(basename "$bin")"
done

printf '%s\n' \
    '# depmod.d seed' \
    'search updates extra built-in weak-updates' \
    'override snd_hda_intel 6.1.* extra' \
    'override snd * updates' \
    'external * /lib/modules/external' \
    'exclude .git' \
    'search \' '  kernel' > "$corpus/depmod_config/directives"
printf 'override a ^6\\.[0-9]+-(amd|arm)64$ weak\nbogus line\n' > "$corpus/depmod_config/bad"
printf '0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0xdeadbeef\tfoo\tdrivers/foo\tEXPORT_SYMBOL_GPL\tNS\nzz\tbad\tvmlinux\tEXPORT_SYMBOL\n' \
    > "$corpus/module_symvers/seed"
printf 'ffffffff81000000 T _stext\nffffffff82000000 r __ksymtab_printk\nffffffff82000010 r __ksymtab__mcount\nbroken\n' \
    > "$corpus/system_map/seed"

echo "seeded from $n module directories:"
for d in "$corpus"/*/; do
    printf '  %-26s %s files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"
done
