#!/bin/sh
# Loopback devices added on demand: with v4l2loopback 0.15 (the control device
# /dev/v4l2loopback; Debian 12's 0.12.7 has none) loaded with no devices, xoq-mount adds one for
# the remote camera, labelled "XoQ <server> <camera>", any V4L2 program reads the pictures from
# it, and unmounting removes the device again. The camera is the server's test pattern.
# needs: target/debug/xoq-server target/debug/xoq-mount target/debug/video_check
# timeout: 300
set -u
. /payload/suite-lib.sh
rmmod v4l2loopback || bad "rmmod v4l2loopback"
insmod /lib/xoq/v4l2loopback-new.ko devices=0 || { bad "insmod v4l2loopback 0.15"; exit 1; }
[ -c /dev/v4l2loopback ] && ok "v4l2loopback $(cat /sys/module/v4l2loopback/version 2>/dev/null) has /dev/v4l2loopback" ||
  { bad "no control device"; exit 1; }
[ -z "$(ls /sys/class/video4linux 2>/dev/null)" ] && ok "no video devices before mounting" || bad "devices: $(ls /sys/class/video4linux)"

xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
printf 'listen = ["127.0.0.1:4731"]\nname = "robot1"\n[[camera]]\nname = "cam0"\nsimulated = true\nmode = "320x240@15"\n' >/tmp/server.toml
start_server /tmp/server.toml
xoq-mount "$T" >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  camera  cam0' 30 || { bad "mount"; cat /tmp/mount.out /tmp/mount.log; exit 1; }
ok "$(grep 'mounted  camera' /tmp/mount.out)"
DEV=$(readlink /dev/xoq/robot1-cam0)
case "$DEV" in /dev/video[0-9]*) ok "/dev/xoq/robot1-cam0 -> $DEV" ;; *) bad "link: $(ls -l /dev/xoq 2>&1)"; exit 1 ;; esac
N=${DEV#/dev/video}
[ "$(cat /sys/class/video4linux/video$N/name)" = "XoQ robot1 cam0" ] && ok "card label: XoQ robot1 cam0" ||
  bad "label: $(cat /sys/class/video4linux/video$N/name)"
video_check read /dev/xoq/robot1-cam0 30 >/tmp/read.out 2>&1 && ok "read 30 numbered frames" || bad "read: $(cat /tmp/read.out)"
tail -3 /tmp/read.out
v4l2-ctl -d "$DEV" --all >/tmp/ctl.out 2>&1
grep -q 'Card type *: XoQ robot1 cam0' /tmp/ctl.out && grep -q "320/240" /tmp/ctl.out &&
  ok "v4l2-ctl: $(grep 'Card type' /tmp/ctl.out | tr -s ' '), 320/240" || bad "v4l2-ctl: $(head -30 /tmp/ctl.out)"

kill -TERM $MOUNT; wait $MOUNT 2>/dev/null
[ ! -e "/sys/class/video4linux/video$N" ] && ok "unmount removed $DEV" || bad "$DEV left after unmount: $(tail -3 /tmp/mount.log)"
[ ! -e /dev/xoq/robot1-cam0 ] && ok "unmount removed /dev/xoq/robot1-cam0" || bad "link left: $(ls -l /dev/xoq)"
kill $SERVER; wait $SERVER 2>/dev/null
[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -20 /tmp/mount.log; }
exit $fail
