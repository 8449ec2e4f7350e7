#!/bin/sh
# Test module: answers any state with the content of tmp/<state>, if the
# test wrote one, and exits with the code in tmp/<state>.exit, if any.
cat "$2/tmp/$1" 2>/dev/null
code=0
[ -f "$2/tmp/$1.exit" ] && code="$(cat "$2/tmp/$1.exit")"
exit "$code"
