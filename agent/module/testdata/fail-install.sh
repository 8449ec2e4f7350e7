#!/bin/sh
# Test module: fails in ArtifactInstall and records that ArtifactFailure ran.
case "$1" in
ArtifactInstall)
    echo "checking space" >&2
    echo "no space left on /data" >&2
    exit 3
    ;;
ArtifactFailure)
    touch "$2/tmp/failure-ran"
    ;;
esac
exit 0
