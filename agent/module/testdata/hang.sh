#!/bin/sh
# Test module: never ends (and starts a child that does not end either);
# in Download it opens stream-next and then waits, reading nothing.
case "$1" in
ProvidePayloadFileSizes)
    ;;
Download)
    exec 3<"$2/stream-next"
    sleep 600 &
    wait
    ;;
*)
    sleep 600 &
    wait
    ;;
esac
exit 0
