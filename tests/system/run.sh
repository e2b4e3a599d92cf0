#!/bin/bash
# The real-system suite: depmod-rs's Debian packages on a Debian 12 system (a debootstrap
# chroot with the amd64 kernel, initramfs-tools, kmod and DKMS), checked step by step
# against what kmod's own depmod does there.
#
#  1. baseline with kmod: `depmod -a KVER`, `mkinitramfs` and dracut
#  2. `apt-get install` of both packages: `depmod` is depmod-rs, kmod's stays runnable
#  3. `depmod -a KVER` writes kmod 30's bytes and kmod's stderr (compat = auto), twice
#     (the second through the configured cache), and the cache is private
#  4. `mkinitramfs` and dracut give images that unpack to the same trees; their staging runs
#     add no cache file
#  5. installing the same packages again with dpkg (the upgrade path) keeps it all
#  6. `apt-get install --reinstall kmod` leaves depmod-rs in place
#  7. a DKMS package (v4l2loopback-dkms) builds against linux-headers; the files DKMS's
#     depmod call wrote are kmod's, and `modprobe -n -v` resolves the module
#  8. the kernel postrm hook drops the kernel's cache
#  9. `apt-get remove depmod-rs-as-depmod`: `depmod` is kmod's again, exactly as kmod
#     installed it, and writes kmod's bytes; `apt-get purge depmod-rs` leaves nothing
#
# Needs root, debootstrap and zstd. Logs and outputs are kept in target/tmp/system-logs/. The chroot is built once and cached as a tarball (see
# tests/system/chroot.sh); the packages come from scripts/package.sh. Prints one line per
# check and ends with "system suite: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/system/chroot.sh

[ "$(id -u)" = 0 ] || { echo "system suite: needs root" >&2; exit 1; }
for tool in debootstrap zstd; do
    command -v "$tool" >/dev/null || { echo "system suite: needs $tool" >&2; exit 1; }
done

t0=$SECONDS
passed=0
failed=0
check() { # description command...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $what"
    else
        failed=$((failed + 1))
        echo "FAIL $what"
    fi
}
die() {
    echo "system suite: $*" >&2
    exit 1
}

system_build_tarball || die "could not build the chroot tarball"
if [ "${DEPMOD_RS_SYSTEM_NO_PACKAGE:-0}" != 1 ]; then
    scripts/package.sh >/dev/null || die "scripts/package.sh failed"
fi
debs=(target/debian/depmod-rs_*.deb target/debian/depmod-rs-as-depmod_*.deb)
for deb in "${debs[@]}"; do
    [ -e "$deb" ] || die "missing $deb; run scripts/package.sh"
done

work=$(mktemp -d "$SYSTEM_CACHE/run.XXXXXX")
root="$work/root"
logs=target/tmp/system-logs
rm -rf "$logs"
cleanup() {
    # The logs and outputs (small) stay for inspection; the chroot goes.
    mkdir -p "$logs"
    cp -p "$work"/*.log "$work"/*.out "$work"/*.std* "$work"/*-image "$logs/" 2>/dev/null
    system_remove "$root"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$root"
tar -C "$root" --zstd -xf "$(system_tarball)" || die "could not unpack the chroot"
system_mount "$root"
echo "::: chroot ready in $((SECONDS - t0)) s" >&2

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive "$@"; }
kver=$(ls "$root/lib/modules" | head -n 1)
[ -n "$kver" ] && [ -d "$root/lib/modules/$kver/kernel" ] || die "no kernel in the chroot"
moddir="$root/lib/modules/$kver"

# The modules.* files depmod writes (the inputs modules.order, modules.builtin* left out),
# copied to DIR.
save_outputs() { # moddir dir
    rm -rf "$2"
    mkdir -p "$2"
    local f
    for f in "$1"/modules.*; do
        case ${f##*/} in
        modules.order | modules.builtin | modules.builtin.modinfo) ;;
        *) cp -p "$f" "$2/" ;;
        esac
    done
}
same_files() { # dir dir: the same names with the same bytes
    diff -r "$1" "$2" >"$work/diff.log" 2>&1 || { head -n 5 "$work/diff.log" >&2; return 1; }
}
# An initramfs image unpacked, listed with every file's type, mode, target and digest.
image_tree() { # image-in-root listing
    rm -rf "$root/tmp/unpacked"
    in_root unmkinitramfs "$1" /tmp/unpacked || return 1
    (cd "$root/tmp/unpacked" && find . -printf '%y %m %p %l\n' | sort &&
        find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$2"
}

# 1. Baseline: kmod's depmod, and an initramfs made with it.
in_root depmod -V | head -n 1 >"$work/kmod-version"
in_root depmod -a "$kver" >"$work/kmod.stdout" 2>"$work/kmod.stderr"
echo $? >"$work/kmod.status"
save_outputs "$moddir" "$work/kmod"
check "baseline: kmod's depmod -a succeeds" grep -qx 0 "$work/kmod.status"
check "baseline: it is kmod 30" grep -qx "kmod version 30" "$work/kmod-version"
in_root mkinitramfs -o /tmp/kmod.img "$kver" >/dev/null 2>&1
check "baseline: mkinitramfs with kmod" image_tree /tmp/kmod.img "$work/kmod-image"
# dracut (it runs depmod -a -b /var/tmp/dracut.XXXXXX/initramfs KVER); a fixed module set.
dracut_image() { # image-in-root
    in_root dracut -f -q -m "base kernel-modules" --no-hostonly --no-early-microcode \
        "$1" "$kver" >"$work/dracut.log" 2>&1
}
dracut_image /tmp/kmod-dracut.img
check "baseline: dracut with kmod" image_tree /tmp/kmod-dracut.img "$work/kmod-dracut-image"

kmod_path=$(in_root dpkg-query -L kmod | grep -x -E '/(usr/)?sbin/depmod')
kmod_target=$(readlink "$root$kmod_path")

# 2. Install both packages.
cp "${debs[@]}" "$root/tmp/"
names=()
for deb in "${debs[@]}"; do names+=("/tmp/${deb##*/}"); done
in_root apt-get install -y -q --no-install-recommends "${names[@]}" >"$work/install.log" 2>&1
check "apt-get install of both packages" test $? = 0
is_ours() { [ "$(readlink "$root$kmod_path")" = /usr/bin/depmod-rs ]; }
is_kmods() { [ "$(readlink "$root$kmod_path")" = "$kmod_target" ]; }
kept_by_dpkg() { [ "$(readlink "$root/usr/lib/depmod-rs/kmod/depmod.kmod")" = "$kmod_target" ]; }
diverted() { in_root dpkg-divert --listpackage "$kmod_path" | grep -qx depmod-rs-as-depmod; }
private_kmod_works() {
    [ "$(in_root /usr/lib/depmod-rs/kmod/depmod -V | head -n 1)" = "kmod version 30" ]
}
depmod_is_rs() { in_root depmod -V | grep -q '^depmod-rs '; }
check "kmod ships depmod at $kmod_path" test -n "$kmod_path"
check "installed: $kmod_path is a symlink to depmod-rs" is_ours
check "installed: $kmod_path is diverted by depmod-rs-as-depmod" diverted
check "installed: depmod -V is depmod-rs's" depmod_is_rs
check "installed: dpkg keeps kmod's $kmod_path at /usr/lib/depmod-rs/kmod/depmod.kmod" kept_by_dpkg
check "installed: kmod's depmod still runs (/usr/lib/depmod-rs/kmod/depmod)" private_kmod_works
check "installed: /etc/depmod-rs.conf is a conffile" \
    in_root sh -c 'dpkg-query -W -f="\${Conffiles}" depmod-rs | grep -q /etc/depmod-rs.conf'

# 3. depmod -a KVER is now depmod-rs: kmod 30's bytes, kmod's stderr and status.
run_rs() { # label
    in_root depmod -a "$kver" >"$work/$1.stdout" 2>"$work/$1.stderr"
    echo $? >"$work/$1.status"
    save_outputs "$moddir" "$work/$1"
}
run_rs rs-cold
check "depmod-rs: depmod -a writes kmod 30's bytes" same_files "$work/kmod" "$work/rs-cold"
check "depmod-rs: same stderr, stdout and exit status as kmod" \
    sh -c "cmp -s '$work/kmod.stderr' '$work/rs-cold.stderr' &&
           cmp -s '$work/kmod.stdout' '$work/rs-cold.stdout' &&
           cmp -s '$work/kmod.status' '$work/rs-cold.status'"
cache="$root/var/cache/depmod-rs/$kver.cache"
check "depmod-rs: the configured cache was written" test -s "$cache"
cache_private() {
    [ "$(stat -c '%u %a' "$cache")" = "0 644" ] && [ "$(stat -c '%u %a' "${cache%/*}")" = "0 755" ]
}
check "depmod-rs: the cache and its directory are root's, 644 and 755" cache_private
run_rs rs-warm
check "depmod-rs: a re-run through the cache writes kmod 30's bytes" \
    same_files "$work/kmod" "$work/rs-warm"
check "depmod-rs: and kmod's stderr" cmp -s "$work/kmod.stderr" "$work/rs-warm.stderr"

# 4. The initramfs.
in_root mkinitramfs -o /tmp/rs.img "$kver" >/dev/null 2>&1
check "mkinitramfs with depmod-rs" image_tree /tmp/rs.img "$work/rs-image"
check "the initramfs unpacks to the same tree as kmod's" \
    cmp -s "$work/kmod-image" "$work/rs-image"
dracut_image /tmp/rs-dracut.img
check "dracut with depmod-rs" image_tree /tmp/rs-dracut.img "$work/rs-dracut-image"
check "the dracut image unpacks to the same tree as kmod's" \
    cmp -s "$work/kmod-dracut-image" "$work/rs-dracut-image"
check "the staging runs added no cache file" \
    test "$(ls "$root/var/cache/depmod-rs")" = "$kver.cache"

# 5. The same packages again, with dpkg: the upgrade path of the maintainer scripts.
in_root dpkg -i "${names[@]}" >"$work/upgrade.log" 2>&1
check "dpkg -i again (upgrade path)" test $? = 0
upgraded() { is_ours && diverted && private_kmod_works; }
check "after the upgrade: depmod is depmod-rs, kmod's still runs" upgraded

# 6. Reinstalling kmod keeps depmod-rs in place.
in_root apt-get install -y -q --no-download --reinstall kmod >"$work/reinstall.log" 2>&1
check "apt-get install --reinstall kmod" test $? = 0
check "after the reinstall: $kmod_path is still depmod-rs" is_ours
check "after the reinstall: depmod -V is depmod-rs's" depmod_is_rs
check "after the reinstall: kmod's depmod still runs" private_kmod_works
check "after the reinstall: kmod's file is in the diverted place" kept_by_dpkg

# 7. DKMS: v4l2loopback builds against the headers; DKMS runs depmod (ours).
in_root apt-get install -y -q --no-install-recommends --no-download v4l2loopback-dkms \
    >"$work/dkms.log" 2>&1
check "v4l2loopback-dkms installs and builds" test $? = 0
check "DKMS installed the module" \
    sh -c "ls '$moddir'/updates/dkms/v4l2loopback.ko* >/dev/null 2>&1"
save_outputs "$moddir" "$work/rs-dkms"
# What kmod writes for the same tree, in a copy without depmod-rs's files (so a file only
# depmod-rs writes would show up as extra).
rm -rf "$root/tmp/copy"
mkdir -p "$root/tmp/copy/lib/modules"
cp -al "$moddir" "$root/tmp/copy/lib/modules/"
for f in "$root/tmp/copy/lib/modules/$kver"/modules.*; do
    case ${f##*/} in
    modules.order | modules.builtin | modules.builtin.modinfo) ;;
    *) rm -f "$f" ;;
    esac
done
in_root /usr/lib/depmod-rs/kmod/depmod -a -b /tmp/copy "$kver" 2>"$work/kmod-dkms.stderr"
save_outputs "$root/tmp/copy/lib/modules/$kver" "$work/kmod-dkms"
check "after DKMS: the index files are kmod 30's" same_files "$work/kmod-dkms" "$work/rs-dkms"
in_root modprobe -n -v -S "$kver" v4l2loopback >"$work/modprobe.out" 2>&1
check "modprobe -n -v resolves the DKMS module" \
    grep -q "insmod /lib/modules/$kver/updates/dkms/v4l2loopback.ko" "$work/modprobe.out"

# 8. The kernel postrm hook drops the removed kernel's cache.
in_root /etc/kernel/postrm.d/depmod-rs "$kver" "/boot/vmlinuz-$kver"
check "the kernel postrm hook removes the kernel's cache" test ! -e "$cache"

# 9. Removal: kmod's depmod is back, exactly; purge leaves nothing.
in_root apt-get remove -y -q depmod-rs-as-depmod >"$work/remove.log" 2>&1
check "apt-get remove depmod-rs-as-depmod" test $? = 0
check "removed: $kmod_path is kmod's symlink again ($kmod_target)" is_kmods
check "removed: no diversion left" \
    sh -c "! chroot '$root' dpkg-divert --list | grep -q depmod"
check "removed: dpkg --verify kmod is clean" in_root dpkg --verify kmod
check "removed: the private directory is gone" test ! -e "$root/usr/lib/depmod-rs"
check "removed: depmod -V is kmod 30's" \
    sh -c "chroot '$root' depmod -V | head -n 1 | grep -qx 'kmod version 30' &&
           ! chroot '$root' depmod -V | grep -q depmod-rs"
in_root depmod -a "$kver" 2>"$work/kmod-after.stderr"
save_outputs "$moddir" "$work/kmod-after"
check "removed: depmod -a writes kmod's bytes" same_files "$work/kmod-dkms" "$work/kmod-after"
in_root apt-get purge -y -q depmod-rs >"$work/purge.log" 2>&1
check "apt-get purge depmod-rs" test $? = 0
check "purged: no depmod-rs files, configuration or cache left" \
    sh -c "test ! -e '$root/usr/bin/depmod-rs' && test ! -e '$root/etc/depmod-rs.conf' &&
           test ! -e '$root/var/cache/depmod-rs' && test ! -e '$root/etc/kernel/postrm.d/depmod-rs' &&
           ! chroot '$root' dpkg -l depmod-rs 2>/dev/null | grep -q '^.[ic]'"

echo "::: system suite done in $((SECONDS - t0)) s" >&2
echo "system suite: $passed passed, $failed failed"
[ "$failed" = 0 ]
