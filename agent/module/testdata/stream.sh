#!/bin/sh
# Test module: takes the files through stream-next and the streams, and
# copies each into tmp/got/, with paths relative to its working directory
# (the file tree), as Mender's examples do. Answers ProvidePayloadFileSizes
# with the content of tmp/sizes, if the test wrote one. Records every
# stream-next line in tmp/lines.
set -e
STATE="$1"
FILES="$2"
case "$STATE" in
ProvidePayloadFileSizes)
    cat "$FILES/tmp/sizes" 2>/dev/null || true
    ;;
Download|DownloadWithFileSizes)
    mkdir -p "$FILES/tmp/got"
    while :; do
        line="$(cat stream-next)"
        [ -n "$line" ] || break
        echo "$line" >> "$FILES/tmp/lines"
        stream="${line% *}"
        [ "$STATE" = DownloadWithFileSizes ] || stream="$line"
        cat "$stream" > "tmp/got/$(basename "$stream")"
    done
    echo "streamed"
    ;;
esac
exit 0
