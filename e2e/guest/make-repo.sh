#!/usr/bin/env bash
# Builds the signed apt repository the boot test serves to its guest over QEMU's user network:
# stand-in `kubelet` and `kubeadm` packages (no registry here serves the real ones) laid out as
# pkgs.k8s.io lays out a minor release's repository (a flat repository, `deb <url> /`, with its
# key as `Release.key`), signed with a key made for this run.
#
#   make-repo.sh VERSION FAILURES OUT_DIR
#
# VERSION is the release the stand-ins report (1.35.0); their `kubeadm join` fails the first
# FAILURES times, as a join does while the control plane is out of reach. The packages carry
# what the real ones carry that the join depends on: kubelet's unit and its /etc/default/kubelet
# conffile, kubeadm's drop-in that passes $KUBELET_EXTRA_ARGS from that file to the kubelet.
# Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg.
set -euo pipefail
version=$1
failures=$2
out=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

package() {
  local name=$1 depends=$2
  local root=$work/$name
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version-1.1"
    echo "Architecture: amd64"
    echo "Maintainer: Catalyst boot test <boot-test@catalyst.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: stand-in $name for Catalyst's boot test"
  } > "$root/DEBIAN/control"
}

# kubelet: records its arguments and waits, as a kubelet runs until stopped.
package kubelet ""
mkdir -p "$work/kubelet/usr/bin" "$work/kubelet/usr/lib/systemd/system" "$work/kubelet/etc/default"
cat > "$work/kubelet/usr/bin/kubelet" <<'SCRIPT'
#!/bin/sh
mkdir -p /var/lib/catalyst-standin
echo "$*" > /var/lib/catalyst-standin/kubelet.args
exec sleep infinity
SCRIPT
cat > "$work/kubelet/usr/lib/systemd/system/kubelet.service" <<'UNIT'
[Unit]
Description=kubelet (Catalyst boot test stand-in)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
echo 'KUBELET_EXTRA_ARGS=' > "$work/kubelet/etc/default/kubelet"
echo /etc/default/kubelet > "$work/kubelet/DEBIAN/conffiles"

# kubeadm: records each call; `join` fails the first FAILURES times, then leaves the kubelet's
# kubeconfig and (re)starts the kubelet, as the real one's kubelet-start phase does.
package kubeadm "kubelet (= $version-1.1)"
mkdir -p "$work/kubeadm/usr/bin" "$work/kubeadm/usr/lib/systemd/system/kubelet.service.d"
cat > "$work/kubeadm/usr/bin/kubeadm" <<SCRIPT
#!/bin/sh
log=/var/lib/catalyst-standin/kubeadm.log
mkdir -p /var/lib/catalyst-standin
echo "kubeadm \$*" >> "\$log"
case "\$1" in
  version) echo "v$version" ;;
  reset) rm -rf /etc/kubernetes/pki ;;
  join)
    attempt=\$(grep -c '^kubeadm join' "\$log")
    if [ "\$attempt" -le $failures ]; then
      echo "stand-in kubeadm: join attempt \$attempt fails, as the test asked" >&2
      exit 1
    fi
    mkdir -p /etc/kubernetes
    echo '# stand-in kubeconfig' > /etc/kubernetes/kubelet.conf
    systemctl daemon-reload
    systemctl restart kubelet
    ;;
esac
SCRIPT
cat > "$work/kubeadm/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" <<'UNIT'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
chmod 0755 "$work/kubelet/usr/bin/kubelet" "$work/kubeadm/usr/bin/kubeadm"

mkdir -p "$out"
for name in kubelet kubeadm; do
  dpkg-deb --root-owner-group -Zgzip --build "$work/$name" "$out/${name}_${version}-1.1_amd64.deb" >/dev/null
done
(cd "$out" && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release)

export GNUPGHOME=$work/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key 'Catalyst boot test <boot-test@catalyst.invalid>' ed25519 sign never
gpg --batch --quiet --armor --export > "$out/Release.key"
gpg --batch --quiet --yes --clearsign --output "$out/InRelease" "$out/Release"
gpg --batch --quiet --yes --armor --detach-sign --output "$out/Release.gpg" "$out/Release"
