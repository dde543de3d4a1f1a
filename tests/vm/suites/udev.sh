#!/bin/sh
# The xoq-mount package's udev rules (udev/60-xoq.rules) and v4l2loopback options
# (kernel-helpers/modprobe.d/xoq.conf) with Debian's real systemd-udevd, in a real kernel:
#   - a CUSE device named ttyXOQ<N> (made by the test helper cuse_stub) gets group dialout, mode
#     0660 and the uaccess tag, whether it existed before udevd started or appears later; a CUSE
#     device with another name keeps the kernel's root 0600. (Debian's 50-udev-default.rules
#     alone already gives any tty[A-Z]*[0-9] group dialout: the uaccess tag is what only our
#     rule adds here);
#   - v4l2loopback loaded with the package's options gives /dev/video10..13 labelled xoq0..3,
#     group video, mode 0660, uaccess, and the links /dev/xoq/xoq0..3; a loopback device with
#     another label gets no /dev/xoq link; links go away with their devices;
#   - udevd reports no problem with the file.
# The package test (tests/pkg/test.sh) checks that the package ships exactly these two files.
# The files travel as "needs" (packed into /payload/bin; they are not programs).
# needs: target/debug/cuse_stub udev/60-xoq.rules kernel-helpers/modprobe.d/xoq.conf
# timeout: 120
set -u
. /payload/suite-lib.sh
# expect WHAT GOT WANT
expect() { if [ "$2" = "$3" ]; then ok "$1: $2"; else bad "$1: got '$2', want '$3'"; fi; }
perms() { stat -c '%U:%G %a' "$1" 2>&1; }
tagged() { udevadm info --query=property "$1" 2>/dev/null | grep -q '^TAGS=.*:uaccess:'; }
# cuse NAME: start cuse_stub for /dev/NAME (pid in $CUSE_PID), wait until the kernel made it
cuse() {
	cuse_stub "$1" >"/tmp/cuse-$1.out" 2>&1 &
	CUSE_PID=$!
	wait_for "/tmp/cuse-$1.out" '^ready' 10 || bad "cuse_stub $1: $(cat "/tmp/cuse-$1.out")"
}

# Where the package installs them. busybox modprobe reads /etc/modprobe.d, not /lib/modprobe.d.
# Mode 0644 as packaged (pack.sh made them executable; udevd would say so). No `install` in
# busybox.
mkdir -p /etc/modprobe.d
cp /payload/bin/60-xoq.rules /lib/udev/rules.d/60-xoq.rules &&
	cp /payload/bin/xoq.conf /etc/modprobe.d/xoq.conf &&
	chmod 644 /lib/udev/rules.d/60-xoq.rules /etc/modprobe.d/xoq.conf || bad "installing the files"

# --- before udevd: the kernel's own permissions (what the rules must change) ------------------
cuse ttyXOQ3
P3=$CUSE_PID
expect "/dev/ttyXOQ3 before udevd" "$(perms /dev/ttyXOQ3)" "root:root 600"
expect "/dev/video10 before udevd" "$(perms /dev/video10)" "root:root 600"

# --- udevd, and the devices that were there before it (coldplug) ------------------------------
# In the foreground of a background job: --daemon would send its log to /dev/null.
/lib/systemd/systemd-udevd 2>/tmp/udevd.log &
i=0
until udevadm control --ping 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { bad "systemd-udevd does not answer: $(cat /tmp/udevd.log)" && exit 1; }
	sleep 0.1
done
ok "systemd-udevd $(udevadm --version) running"
udevadm trigger --action=add --subsystem-match=cuse --subsystem-match=video4linux
udevadm settle --timeout=30 || bad "udevadm settle (coldplug)"
expect "/dev/ttyXOQ3 (coldplug)" "$(perms /dev/ttyXOQ3)" "root:dialout 660"
tagged /dev/ttyXOQ3 && ok "/dev/ttyXOQ3 tagged uaccess" || bad "/dev/ttyXOQ3 not tagged uaccess"
# guest-init loaded v4l2loopback with the labels xoq-cam0, xoq-cam1.
expect "/dev/video10 (coldplug)" "$(perms /dev/video10)" "root:video 660"
expect "/dev/xoq/xoq-cam0" "$(readlink /dev/xoq/xoq-cam0)" "../video10"

# --- devices appearing while udevd runs -------------------------------------------------------
cuse ttyXOQ12
P12=$CUSE_PID
cuse otherdev0
POTHER=$CUSE_PID
udevadm settle --timeout=30 || bad "udevadm settle (cuse)"
expect "/dev/ttyXOQ12 (hotplug)" "$(perms /dev/ttyXOQ12)" "root:dialout 660"
tagged /dev/ttyXOQ12 && ok "/dev/ttyXOQ12 tagged uaccess" || bad "/dev/ttyXOQ12 not tagged uaccess"
expect "/dev/otherdev0: not ours, kernel default" "$(perms /dev/otherdev0)" "root:root 600"
tagged /dev/otherdev0 && bad "/dev/otherdev0 tagged uaccess" || ok "/dev/otherdev0 not tagged"

# --- v4l2loopback with the package's options --------------------------------------------------
rmmod v4l2loopback || bad "rmmod v4l2loopback"
udevadm settle --timeout=30
[ -e /dev/xoq/xoq-cam0 ] && bad "/dev/xoq/xoq-cam0 outlived its device" || ok "/dev/xoq/xoq-cam0 removed with its device"
modprobe v4l2loopback || bad "modprobe v4l2loopback (options from xoq.conf)"
udevadm settle --timeout=30 || bad "udevadm settle (v4l2loopback)"
for n in 0 1 2 3; do
	dev=/dev/video1$n
	expect "$dev label" "$(cat /sys/class/video4linux/video1$n/name 2>&1)" "xoq$n"
	expect "$dev" "$(perms $dev)" "root:video 660"
	expect "/dev/xoq/xoq$n" "$(readlink /dev/xoq/xoq$n)" "../video1$n"
	tagged $dev && ok "$dev tagged uaccess" || bad "$dev not tagged uaccess"
done
# One value per possible device (8); ours are the first four.
expect "exclusive_caps" "$(cut -d, -f1-4 /sys/module/v4l2loopback/parameters/exclusive_caps)" "Y,Y,Y,Y"
rmmod v4l2loopback || bad "rmmod v4l2loopback"
# Another label: Debian's own rules still give it group video, ours no /dev/xoq link.
insmod "/lib/modules/$(uname -r)/extra/v4l2loopback.ko" devices=1 video_nr=20 card_label=webcam ||
	bad "insmod v4l2loopback card_label=webcam"
udevadm settle --timeout=30
expect "/dev/video20 (label webcam)" "$(perms /dev/video20)" "root:video 660"
expect "links in /dev/xoq for webcam" "$(ls /dev/xoq 2>/dev/null | tr '\n' ' ')" ""

# --- the helpers go, so do their devices ------------------------------------------------------
kill "$P3" "$P12" "$POTHER"
wait "$P3" "$P12" "$POTHER" 2>/dev/null
udevadm settle --timeout=30
[ -e /dev/ttyXOQ12 ] && bad "/dev/ttyXOQ12 outlived cuse_stub" || ok "/dev/ttyXOQ12 gone with cuse_stub"

# udevd names a rules file it cannot parse (or a group it cannot find) in its log.
if grep '60-xoq' /tmp/udevd.log; then bad "systemd-udevd complained about 60-xoq.rules"; else ok "no complaint from systemd-udevd about 60-xoq.rules"; fi
udevadm control --exit
exit $fail
