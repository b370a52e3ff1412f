#!/usr/bin/env bash
# The layout rules of toolkit/gloss (README, "Layout"), checked:
#  1. floors: a folder includes only itself and the folders below it in FLOORS;
#  2. no include circle between files (tsort finds loops);
#  3. no function over MAX_LINES lines in model/, decode/, train/, run/ (translate/ too).
# Prints each breach and exits 1 if there is one.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
src=$root/toolkit/gloss
FLOORS=(util dist tensor nn text model eval decode train report translate recipe run serve cli)
MAX_LINES=120
bad=0
rank() {
  local i
  for i in "${!FLOORS[@]}"; do [ "${FLOORS[$i]}" = "$1" ] && { echo "$i"; return; }; done
  echo -1
}

# 1. Floors.
for dir in "$src"/*/; do
  folder=$(basename "$dir")
  r=$(rank "$folder")
  if [ "$r" -lt 0 ]; then echo "floors: toolkit/gloss/$folder is in no floor; add it to FLOORS and the README"; bad=1; continue; fi
  while IFS=: read -r file _ inc; do
    target=$(sed -E 's|.*"gloss/([^/]+)/.*|\1|' <<<"$inc")
    t=$(rank "$target")
    if [ "$target" != "$folder" ] && [ "$t" -ge "$r" ]; then
      echo "floors: ${file#$root/} includes gloss/$target/ (floor $t), above or beside its own folder $folder (floor $r)"
      bad=1
    fi
  done < <(grep -Hn '#include "gloss/' "$dir"*.h "$dir"*.cc 2>/dev/null)
done

# 2. Include circles (file level).
edges=$(for f in "$src"/*/*.h "$src"/*/*.cc; do
  me=${f#$src/}
  grep -o '#include "gloss/[^"]*"' "$f" | sed -E 's|#include "gloss/([^"]*)"|\1|' | while read -r inc; do echo "$inc $me"; done
  echo "$me $me"
done)
if ! tsort <<<"$edges" >/dev/null 2>/tmp/gloss_tsort.$$; then
  echo "cycles: $(head -5 /tmp/gloss_tsort.$$ | tr '\n' ' ')"
  bad=1
fi
rm -f /tmp/gloss_tsort.$$

# 3. Function lengths: a definition starts at a line in column 0 that begins with a name (its
# signature's first line; bodies are indented) and ends at the next line that is just '}'.
for f in "$src"/{model,decode,train,run,translate}/*.cc; do
  [ -f "$f" ] || continue
  awk -v max="$MAX_LINES" -v file="${f#$root/}" '
    /^(namespace|struct|class|enum|union|extern|template|using)/ { start = 0; next }
    /^[A-Za-z_]/ { start = NR; name = $0; next }
    /^\};/ { start = 0; next }
    start > 0 && /^\}$/ {
      n = NR - start + 1
      if (n > max) { sub(/\(.*/, "", name); printf "length: %s:%d: %s is %d lines (at most %d)\n", file, start, name, n, max; bad = 1 }
      start = 0
    }
    END { exit bad }' "$f" || bad=1
done

if [ "$bad" -eq 0 ]; then echo "layout: floors, include graph and function lengths as the README says"; fi
exit $bad
