#!/bin/sh
# The boot test's probe, baked into the test guest (never into a user's): once cloud-init and
# the operator's join unit have done their work, it reports on the second serial port (ttyS1)
# what they made of this guest. After the first boot it spoils /etc/default/kubelet and
# reboots, so the second boot shows the node IP written again and no second join; then it
# powers off.
out=/dev/ttyS1
dir=/var/lib/catalyst-probe
mkdir -p "$dir"
boot=$(( $(cat "$dir/boots" 2>/dev/null || echo 0) + 1 ))
echo "$boot" > "$dir/boots"
say() { printf '%s\n' "$*" > "$out"; }
report() {
  title=$1
  shift
  say "=== $title"
  "$@" > "$out" 2>&1
  say "=== exit $?"
}
say "=== boot $boot"
cloud-init status --wait > /dev/null 2>&1
# The join is done when the kubelet's kubeconfig exists and its unit no longer runs or waits
# to run again; the node IP when its unit has run. At most 15 minutes.
deadline=$(( $(date +%s) + 900 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  join=$(systemctl show -p ActiveState --value catalyst-join.service)
  node_ip=$(systemctl show -p ActiveState --value catalyst-node-ip.service)
  if [ -e /etc/kubernetes/kubelet.conf ] && [ "$join" != activating ] && [ "$join" != active ] && [ "$node_ip" != activating ]; then
    break
  fi
  sleep 2
done
report "cloud-init schema" cloud-init schema --system
report "cloud-init status" cloud-init status --long
report "systemd-analyze verify" systemd-analyze verify catalyst-join.service catalyst-node-ip.service
report "kubelet defaults" cat /etc/default/kubelet
report "guest address" ip -4 -o addr show scope global
report "kubeadm calls" cat /var/lib/catalyst-standin/kubeadm.log
report "kubelet args" cat /var/lib/catalyst-standin/kubelet.args
report "packages" dpkg-query -W -f '${Package} ${Version}\n' kubelet kubeadm containerd
report "held" apt-mark showhold
report "kubernetes source" cat /etc/apt/sources.list.d/kubernetes.list
report "keyring" gpg --show-keys --with-colons /etc/apt/keyrings/kubernetes-apt-keyring.gpg
report "containerd cgroup driver" grep SystemdCgroup /etc/containerd/config.toml
report "join unit" systemctl show -p ConditionResult -p ActiveState -p Result -p NRestarts catalyst-join.service
report "node-ip unit" systemctl show -p ActiveState -p Result catalyst-node-ip.service
report "join journal" journalctl -b -u catalyst-join.service -o cat --no-pager
if [ "$boot" -eq 1 ]; then
  echo 'KUBELET_EXTRA_ARGS=--node-ip=spoiled-before-reboot' > /etc/default/kubelet
  say "=== rebooting"
  systemctl reboot
else
  say "=== done"
  systemctl poweroff
fi
