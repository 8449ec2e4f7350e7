#!/bin/sh
# Test module: leaves a child behind that keeps stdout and stderr open.
case "$1" in
ArtifactCommit)
    echo "starting service"
    sleep 5 &
    ;;
NeedsArtifactReboot)
    echo "Automatic"
    sleep 5 &
    ;;
esac
exit 0
