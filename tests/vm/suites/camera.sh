#!/bin/sh
# A remote camera in a real kernel: the "robot camera" is v4l2loopback /dev/video10, fed the
# numbered pattern by video_check; xoq-server captures it (V4L2, mmap streaming); xoq-mount
# claims the other loopback device and writes the decoded pictures to it; video_check reads it
# as an ordinary V4L2 app would. First YUYV (H.264 on the wire), then MJPEG (passed through).
# 320x240@15: the guest is emulated (one slow CPU) and runs feeder, server, mounter and reader.
# needs: target/debug/xoq-server target/debug/xoq-mount target/debug/video_check
# timeout: 500
set -u
. /payload/suite-lib.sh
run() { "$@" >/tmp/run.out 2>&1; rc=$?; cat /tmp/run.out; [ $rc = 0 ] || fail=1; }
xoq-server authorize "$(xoq-mount id 2>/dev/null)" >/dev/null 2>&1 || bad "authorize"
printf 'listen = ["127.0.0.1:4730"]\nname = "robot1"\n[[camera]]\nname = "cam0"\ndevice = "/dev/video10"\n' >/tmp/server.toml

echo "-- YUYV camera, H.264 on the wire"
video_check feed /dev/video10 320x240@15 yuyv >/tmp/feed.log 2>&1 &
FEED=$!
# the server needs the feeder's format on the device: wait for the feeder to have set it
wait_for /tmp/feed.log '^feeding ' 20 || bad "feeder: $(cat /tmp/feed.log)"
start_server /tmp/server.toml
# the server prints the ticket first, then what it serves
wait_for /tmp/server.out 'serving: camera cam0 (/dev/video10)' 20 && ok "server captures /dev/video10" || bad "server: $(cat /tmp/server.out /tmp/server.log | tail -5)"
xoq-mount "$T" >/tmp/mount.out 2>/tmp/mount.log &
MOUNT=$!
wait_for /tmp/mount.out 'mounted  camera  cam0' 30 || { bad "mount"; cat /tmp/mount.out /tmp/mount.log; exit 1; }
ok "$(grep 'mounted  camera' /tmp/mount.out)"
[ "$(readlink /dev/xoq/robot1-cam0)" = /dev/video11 ] && ok "/dev/xoq/robot1-cam0 -> /dev/video11" || bad "link: $(ls -l /dev/xoq 2>&1)"
run video_check read /dev/xoq/robot1-cam0 60
v4l2-ctl -d /dev/video11 --all >/tmp/ctl.out 2>&1
grep -q 'Card type *: xoq-cam1' /tmp/ctl.out && grep -q "YUYV" /tmp/ctl.out && grep -q "320/240" /tmp/ctl.out &&
  ok "v4l2-ctl: $(grep 'Card type' /tmp/ctl.out | tr -s ' '), YUYV 320/240" || bad "v4l2-ctl: $(head -30 /tmp/ctl.out)"

echo "-- the link stalls (server stopped 1.5 s): the device keeps giving the last picture"
video_check stall /dev/video11 3 >/tmp/stall.out 2>&1 &
P=$!
sleep 0.7; kill -STOP $SERVER; sleep 1.5; kill -CONT $SERVER
wait $P; rc=$?; cat /tmp/stall.out; [ $rc = 0 ] || fail=1
run video_check read /dev/video11 30

echo "-- a mode the camera cannot give is refused clearly"
XOQ_RUNTIME_DIR=/tmp/xoq/run2 xoq-mount "$T" --camera-sink y4m:/tmp/y4m --camera-mode 1920x1080@30 >/tmp/m2.out 2>/tmp/m2.log &
M2=$!
wait_for /tmp/m2.log 'cannot give 1920x1080@30' 30 && ok "refused: $(grep -o 'camera .cam0.*' /tmp/m2.log | head -1)" || bad "no refusal: $(tail -5 /tmp/m2.log)"
kill -TERM $M2; wait $M2 2>/dev/null

kill -TERM $MOUNT; wait $MOUNT 2>/dev/null
[ ! -e /dev/xoq/robot1-cam0 ] && ok "unmount removed /dev/xoq/robot1-cam0" || bad "link left: $(ls -l /dev/xoq)"
kill $SERVER $FEED; wait $SERVER $FEED 2>/dev/null

echo "-- MJPEG camera, passed through"
video_check feed /dev/video10 320x240@15 mjpg >/tmp/feed2.log 2>&1 &
FEED=$!
wait_for /tmp/feed2.log '^feeding ' 20 || bad "feeder: $(cat /tmp/feed2.log)"
start_server /tmp/server.toml
xoq-mount "$T" >/tmp/mount2.out 2>/tmp/mount2.log &
MOUNT=$!
wait_for /tmp/mount2.out 'mounted  camera  cam0' 30 || { bad "mjpeg mount"; cat /tmp/mount2.out /tmp/mount2.log; }
grep -q 'mjpeg' /tmp/mount2.out && ok "$(grep 'mounted  camera' /tmp/mount2.out)" || bad "mount line: $(cat /tmp/mount2.out)"
run video_check read /dev/video11 30
kill -TERM $MOUNT; kill $SERVER $FEED

[ $fail = 0 ] || { echo "--- server log"; tail -20 /tmp/server.log; echo "--- mount log"; tail -20 /tmp/mount.log; }
exit $fail
