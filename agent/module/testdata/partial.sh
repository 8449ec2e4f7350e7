#!/bin/sh
# Test module: breaks the stream protocol the way tmp/mode says.
#   short   reads 10 bytes of the first stream and exits 0
#   nostream reads the first stream-next line, never opens the stream
#   onefile reads the first file whole, exits without reading stream-next again
#   fail    exits 1 without touching stream-next
mode="$(cat "$2/tmp/mode")"
case "$1" in
Download)
    case "$mode" in
    fail)
        echo "cannot download" >&2
        exit 1
        ;;
    esac
    line="$(cat "$2/stream-next")"
    case "$mode" in
    short) head -c 10 "$2/$line" > /dev/null ;;
    nostream) ;;
    onefile) cat "$2/$line" > /dev/null ;;
    esac
    ;;
esac
exit 0
