#!/usr/bin/env bash
# The module graph has no cycle: module X depends on Y when src/X.c or
# include/icasweep/X.h includes "icasweep/Y.h". Prints the graph, fails on a
# cycle (naming it) or on a module without its header/source pair.
set -euo pipefail
root=${ICAS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
fail=0
edges=$(for f in src/*.c include/icasweep/*.h; do
  m=$(basename "$f"); m=${m%.*}
  [ "$m" = main ] && continue
  grep -o '#include "icasweep/[a-z_]*\.h"' "$f" | sed 's/.*icasweep\/\([a-z_]*\)\.h"/\1/' |
    while read -r dep; do [ "$dep" != "$m" ] && echo "$m $dep"; done || true # a file without includes
done | sort -u)
echo "module dependencies (module: what it includes):"
echo "$edges" | awk '{d[$1]=d[$1] " " $2} END {for (m in d) print "  " m ":" d[m]}' | sort
for h in include/icasweep/*.h; do
  m=$(basename "$h" .h)
  [ -f "src/$m.c" ] || { echo "FAIL: include/icasweep/$m.h has no src/$m.c"; fail=1; }
done
# tsort reports a cycle on stderr and exits non-zero
if ! order=$(echo "$edges" | tsort 2>"${TMPDIR:-/tmp}/tsort.$$"); then
  echo "FAIL: include cycle among modules:"; cat "${TMPDIR:-/tmp}/tsort.$$"; fail=1
fi
rm -f "${TMPDIR:-/tmp}/tsort.$$"
[ $fail -eq 0 ] && echo "no cycle; a dependency order: $(echo $order | tr ' ' '\n' | tac | tr '\n' ' ')"
exit $fail
