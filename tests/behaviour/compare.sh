#!/usr/bin/env bash
# Compares two snapshots from tests/behaviour/snapshot.sh:
#   bash tests/behaviour/compare.sh BUILD_DIR SNAPSHOT_A SNAPSHOT_B
# The models' parameters (via BUILD_DIR/tests/gloss_param_digest, so a changed recipe text
# inside a model file does not count), the shortlist and every translation must be identical.
# Prints one line per item and exits 1 if any differs.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: compare.sh BUILD_DIR SNAPSHOT_A SNAPSHOT_B" >&2; exit 2; }
digest=$1/tests/gloss_param_digest
a=$2
b=$3
[ -x "$digest" ] || { echo "compare.sh: no $digest; build the tests first (bash scripts/build.sh)" >&2; exit 2; }
bad=0
same() {  # LABEL FILE_A FILE_B
  if cmp -s "$2" "$3"; then
    echo "same       $1"
  else
    echo "DIFFERENT  $1"
    bad=1
  fi
}
for m in run/model.best.gloss ckpt-a.gloss ckpt-b.gloss; do
  if ! "$digest" "$a/$m" >"$a/$m.digest" || ! "$digest" "$b/$m" >"$b/$m.digest"; then
    echo "DIFFERENT  $m: cannot read its parameters"
    bad=1
    continue
  fi
  sed -i 1d "$a/$m.digest" "$b/$m.digest"  # the file name line
  same "$m parameters ($(wc -l <"$a/$m.digest") tensors)" "$a/$m.digest" "$b/$m.digest"
  same "$m file bytes" "$a/$m" "$b/$m"
done
same "shortlist.bin" "$a/shortlist.bin" "$b/shortlist.bin"
for t in "$a"/*.de; do
  name=$(basename "$t")
  same "$name ($(wc -l <"$t") lines)" "$t" "$b/$name"
done
same "attention.svg" "$a/attention.svg" "$b/attention.svg"
exit $bad
