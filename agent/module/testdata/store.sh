#!/bin/sh
# Test module: does not stream, so the files arrive in files/. Records how
# it was called (state, tree, working directory) in tmp/calls.
set -e
echo "$1 $2 $(pwd)" >> "$2/tmp/calls"
case "$1" in
ArtifactInstall)
    ls "$2/files" > "$2/tmp/installed"
    echo "installing" 
    echo "a warning" >&2
    ;;
esac
exit 0
