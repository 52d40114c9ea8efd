#!/usr/bin/env bash
# Builds the Debian guest the boot test starts under QEMU: a root filesystem made by debootstrap
# from Debian's packages (systemd, cloud-init, containerd, the CNI plugins, a kernel), packed
# into an ext4 image without mounting anything, beside its kernel and initrd. Also the test's
# probe: a unit that reports, on the guest's second serial port, what the join did.
#
#   build-image.sh OUT_DIR
#
# OUT_DIR gets rootfs.img, vmlinuz and initrd.img. The Debian mirror is the one this machine's
# apt uses. Needs root (debootstrap), debootstrap and e2fsprogs.
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm

# The mirror this machine's apt is set up with (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1 || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { echo "no Debian mirror in this machine's apt sources" >&2; exit 1; }

packages=(
  systemd systemd-sysv udev dbus kmod procps iproute2 ifupdown isc-dhcp-client
  linux-image-cloud-amd64 initramfs-tools
  cloud-init locales
  containerd containernetworking-plugins
  # What the install script fetches with apt first: preinstalled, as the image has no other source.
  apt-transport-https ca-certificates curl gpg
)

work=$(mktemp -d)
root=$work/root
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# A bare system first, then the packages with apt in it: debootstrap's own --include fails
# to order the configuration of cloud-init's Python dependencies.
debootstrap --variant=minbase "$suite" "$root" "$mirror"
echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
# Nothing starts in the chroot (invoke-rc.d asks policy-rc.d; 101: not allowed).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
chroot "$root" apt-get update -q
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends "${packages[@]}"
umount "$root/proc"
rm "$root/usr/sbin/policy-rc.d"
# The locale cloud-init's locale module sets (en_US.UTF-8, its default), as cloud images have it.
echo 'en_US.UTF-8 UTF-8' > "$root/etc/locale.gen"
chroot "$root" locale-gen >/dev/null

# No package source: the install script's apt-get update reads only the test's repository.
: > "$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
# The root disk, a serial console, and a root login on it for whoever watches the console.
echo '/dev/vda / ext4 defaults 0 1' > "$root/etc/fstab"
echo catalyst-guest > "$root/etc/hostname"
chroot "$root" passwd -d root >/dev/null
# NoCloud only: cloud-init looks for nothing else (each other source costs seconds under TCG).
echo 'datasource_list: [ NoCloud, None ]' > "$root/etc/cloud/cloud.cfg.d/90-catalyst-test.cfg"
install -m 0755 "$here/probe.sh" "$root/usr/local/sbin/catalyst-probe"
install -m 0644 "$here/catalyst-probe.service" "$root/etc/systemd/system/catalyst-probe.service"
chroot "$root" systemctl enable catalyst-probe.service >/dev/null 2>&1
chroot "$root" apt-get clean

mkdir -p "$out"
cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -f "$out/rootfs.img"
mkfs.ext4 -q -L root -d "$root" "$out/rootfs.img" 2G
