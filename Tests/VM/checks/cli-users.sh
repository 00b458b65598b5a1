#!/bin/sh
# Who may use a bound NIC (issue 12 item 9), in the guest, on a NIC bound to vfio-pci:
#  1. udev/70-miniport-vfio.rules is installed (into /run/udev/rules.d: the guest's /etc is the
#     host's, read-only) and udev re-applies it: /dev/vfio/GROUP becomes root:miniport 0660;
#  2. a user outside the group `miniport` is refused with one line naming the group and the rule,
#     exit nonzero, nothing left open (the next run gets the device);
#  3. a user in the group, with its memlock limit raised, runs `miniport capture` (the host sends
#     frames after the ready file) and gets exactly --count frames.
# Users and the group are written into copies of /etc/passwd and /etc/group bind-mounted over the
# read-only ones; the commands run under setpriv(1) with those ids (no login, no sudo).
#   cli-users.sh MINIPORT OUT DEV RULE
set -u
BIN=$1
OUT=$2
DEV=$3
RULE=$4
GID=4242 IN=4243 OUTSIDER=4244
fail() { echo "FAIL: $*"; exit 1; }
T=$(mktemp -d /tmp/cli-users.XXXXXX) || fail "no temporary directory"
chmod 1777 "$T"  # the users write their capture files and ready file here

cp /etc/group "$T/group" && cp /etc/passwd "$T/passwd" || fail "cannot copy /etc/group and /etc/passwd"
echo "miniport:x:$GID:mpuser" >> "$T/group"
echo "outsider:x:$OUTSIDER:" >> "$T/group"
echo "mpuser:x:$IN:$GID:miniport user:$T:/bin/sh" >> "$T/passwd"
echo "outsider:x:$OUTSIDER:$OUTSIDER:not in the group:$T:/bin/sh" >> "$T/passwd"
mount --bind "$T/group" /etc/group && mount --bind "$T/passwd" /etc/passwd || fail "cannot bind-mount the copies over /etc"
trap 'umount /etc/passwd; umount /etc/group' EXIT
getent group miniport | grep -q ":$GID:" || fail "the group miniport is not visible: $(getent group miniport)"

GROUP=$(basename "$(readlink "/sys/bus/pci/devices/$DEV/iommu_group")")
NODE=/dev/vfio/$GROUP
[ -e "$NODE" ] || fail "$NODE does not exist: is $DEV bound to vfio-pci?"

# 1. The rule. udevd may not run in this guest: start it for the rule if so.
mkdir -p /run/udev/rules.d && cp "$RULE" /run/udev/rules.d/ || fail "cannot install $RULE"
if ! udevadm control --ping >/dev/null 2>&1; then
    for d in /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd /sbin/udevd; do
        [ -x "$d" ] && { "$d" --daemon >/dev/null 2>&1; break; }
    done
    sleep 1
fi
udevadm control --reload >/dev/null 2>&1
udevadm trigger --action=add --subsystem-match=vfio >/dev/null 2>&1
udevadm settle --timeout=10 >/dev/null 2>&1
owner=$(stat -c '%U:%G %a' "$NODE")
echo "$NODE: $owner" | tee "$OUT/node.txt"
[ "$owner" = "root:miniport 660" ] || fail "after installing the rule $NODE is '$owner', expected root:miniport 660"
echo "ok: the udev rule gives $NODE to the group miniport"

# 2. Outside the group: refused, one line, naming the group and the rule.
setpriv --reuid=$OUTSIDER --regid=$OUTSIDER --clear-groups -- \
    "$BIN" capture --device "$DEV" --count 1 --seconds 20 --write "$T/outsider.pcapng" --quiet > "$T/outsider.out" 2> "$T/outsider.err"
rc=$?
cp "$T/outsider.err" "$OUT/outsider.err"
cat "$T/outsider.err"
[ $rc -ne 0 ] || fail "the user outside the group opened $DEV (exit 0)"
[ "$(wc -l < "$T/outsider.err")" -eq 1 ] || fail "the refusal is not one line: $(cat "$T/outsider.err")"
grep -q "group \`miniport\`" "$T/outsider.err" || fail "the refusal does not name the group miniport"
grep -q "70-miniport-vfio.rules" "$T/outsider.err" || fail "the refusal does not name the udev rule"
grep -q "$NODE" "$T/outsider.err" || fail "the refusal does not name $NODE"
[ ! -s "$T/outsider.out" ] || fail "the refused run printed figures: $(cat "$T/outsider.out")"
echo "ok: a user outside the group is refused (exit $rc)"

# 3. In the group, memlock raised (setpriv keeps the limits the shell sets).
ulimit -l unlimited || fail "cannot raise the memlock limit"
setpriv --reuid=$IN --regid=$GID --groups=$GID -- sh -c 'echo "uid $(id -u) gid $(id -g) groups $(id -G) memlock $(ulimit -l)"' | tee "$OUT/user.txt"
# The ready file: the user writes it in its own directory; it is copied to OUT for the host.
( while [ ! -e "$T/ready" ]; do sleep 0.1; done; cp "$T/ready" "$OUT/ready" ) &
watcher=$!
setpriv --reuid=$IN --regid=$GID --groups=$GID -- \
    "$BIN" capture --device "$DEV" --count 10 --seconds 60 --write "$T/user.pcapng" --json --quiet --ready "$T/ready" \
    > "$T/user.json" 2> "$T/user.err"
rc=$?
kill $watcher 2>/dev/null
cp "$T/user.json" "$T/user.err" "$T/user.pcapng" "$OUT/" 2>/dev/null
cat "$T/user.err"
[ $rc -eq 0 ] || fail "the user in the group could not capture (exit $rc): $(cat "$T/user.err")"
[ "$(stat -c %u "$T/user.pcapng")" = "$IN" ] || fail "the capture file is not the user's"
echo "ok: a user in the group captured: $(cat "$T/user.json")"
