#!/bin/sh
# librlr never writes to stdout or stderr itself (include/rlr/log.h): every line goes to
# the node's LogSink, and only the default sink and fatal handler in src/log.cpp touch
# stderr. Fails, naming the lines, when code under DIR (comments aside) writes there.
#   sh tests/lint/no_stdio.sh DIR
dir=${1:?usage: no_stdio.sh DIR}
hits=$(grep -rnE '\b(f?printf|f?puts|putchar|perror|std::(cout|cerr|clog))\b|\b(stdout|stderr|STDOUT_FILENO|STDERR_FILENO)\b' \
         "$dir" --include='*.cpp' --include='*.h' |
       grep -v "^$dir/log.cpp:" |
       grep -vE '^[^:]+:[0-9]+:[[:space:]]*//')
if [ -n "$hits" ]; then
  echo "library code writes to stdout/stderr; log through the node's LogSink (util/logger.h):"
  echo "$hits"
  exit 1
fi
echo "no library code writes to stdout/stderr"
