#!/usr/bin/env bash
# End to end, issue 14: damaged or forged model, checkpoint and shortlist files are one-line
# errors (exit 2) naming the file, with peak memory near the file's size, never an allocation
# the forged sizes ask for.
# Usage: hostile_files_test.sh GLOSS_BINARY SOURCE_DIR
set -uo pipefail
gloss=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

d=$src/data/multi30k
"$gloss" train --data.train_src "$d/val.en.gz" --data.train_tgt "$d/val.de.gz" --subword.vocab_size 400 \
  --model.emb_dim 16 --model.enc_hidden 16 --model.dec_hidden 24 --model.att_dim 16 --model.readout_dim 16 \
  --train.batch_size 32 --train.max_steps 2 --train.valid_every 2 --run.workdir "$tmp/run" >/dev/null 2>"$tmp/log" \
  || fail "train exit $?: $(tail -3 "$tmp/log")"
model=$tmp/run/model.best.gloss
printf 'A man is riding a bike.\nTwo dogs play.\n' >"$tmp/in.en"

# forge IN OUT FIELD VALUE: sets one stored field of a model file and fixes the checksum, so only
# the forged value is wrong. Fields: the configuration's integers, the length of a stored string.
forge() {
  python3 - "$@" <<'PY'
import struct, sys, zlib
src, out, field, value = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
d = bytearray(open(src, "rb").read())
p = 24 + 40  # envelope header, then the archive's header
layout = [("cell", "<i"), ("src_vocab", "<q"), ("tgt_vocab", "<q"), ("emb_dim", "<q"), ("enc_hidden", "<q"),
          ("enc_layers", "<i"), ("bidirectional", "s"), ("dec_hidden", "<q"), ("att_dim", "<q"), ("readout", "s"),
          ("readout_dim", "<q"), ("dec_init", "s"), ("tie", "<?"), ("dropouts", "<fff"), ("dec_layers", "<i"),
          ("layer_norm", "<?"), ("src_spm", "s")]
for name, fmt in layout:
    if name == field:
        struct.pack_into("<q" if fmt == "s" else fmt, d, p, value)
        break
    p += 8 + struct.unpack_from("<q", d, p)[0] if fmt == "s" else struct.calcsize(fmt)
else:
    sys.exit("no field " + field)
struct.pack_into("<I", d, 20, zlib.crc32(bytes(d[24:])) & 0xFFFFFFFF)
open(out, "wb").write(d)
PY
}

# expect_bounded NAME SUBSTRING -- command: expect_error, and a peak RSS below 400 MB.
expect_bounded() {
  local name=$1 want=$2
  shift 3
  expect_error "$name" "$want" -- /usr/bin/time -f %M -o "$tmp/rss" "$@"
  local kb
  kb=$(tail -1 "$tmp/rss")
  [ "$kb" -lt 400000 ] && pass || fail "$name: peak RSS $kb kB"
}

forge "$model" "$tmp/f.gloss" emb_dim 1073741824
expect_bounded "emb_dim 2^30" "f.gloss: is damaged: its stored configuration is invalid (model.emb_dim must be between 1 and 16384" -- \
  "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
forge "$model" "$tmp/f.gloss" emb_dim 16000
expect_bounded "emb_dim 16000" "f.gloss: is damaged: its configuration needs at least" -- \
  "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
forge "$model" "$tmp/f.gloss" enc_layers 100000
expect_bounded "enc_layers" "model.enc_layers must be between 1 and 16" -- "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
forge "$model" "$tmp/f.gloss" readout 1099511627776
expect_bounded "string length 2^40" "f.gloss: is damaged: a stored string of 1099511627776 items does not fit" -- \
  "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
forge "$model" "$tmp/f.gloss" src_spm 4000000000
expect_bounded "subword model length" "does not fit in the" -- "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
# Raw bytes of a forged string are never echoed: 'maxout' -> 'maxou' plus the next byte.
forge "$model" "$tmp/f.gloss" readout 5
expect_error "bad stored choice" "f.gloss:" -- "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
! LC_ALL=C grep -q '[^[:print:]]' "$tmp/err" && pass || fail "raw bytes echoed: $(cat -v "$tmp/err")"
# A vocabulary that disagrees with the stored subword model (defect 4: ids beyond the table).
vocab=$(python3 -c "import struct; print(struct.unpack_from('<q', open('$model','rb').read(), 24+40+4)[0])")
forge "$model" "$tmp/f.gloss" src_vocab $((vocab - 50))
expect_error "source vocabulary below the subword model's" \
  "f.gloss: is damaged: its source subword model has $vocab pieces, its source vocabulary $((vocab - 50))" -- \
  "$gloss" translate -m "$tmp/f.gloss" -i "$tmp/in.en"
for cmd in "average -o $tmp/avg.gloss $tmp/f.gloss $model" "shortlist -m $tmp/f.gloss -s $d/val.en.gz -t $d/val.de.gz -o $tmp/s.bin"; do
  # shellcheck disable=SC2086
  expect_error "gloss ${cmd%% *} of a forged model" "f.gloss: is damaged" -- "$gloss" $cmd
done
# The same damage in a checkpoint (resume reads it).
ckpt=$tmp/run/checkpoint.gckpt
forge "$ckpt" "$tmp/f.gckpt" dec_hidden 9999
expect_bounded "checkpoint dec_hidden" "f.gckpt: is damaged" -- "$gloss" average -o "$tmp/a.gloss" "$tmp/f.gckpt"

# Shortlists: a header whose vocabularies are not the model's is refused before anything is built.
"$gloss" shortlist -m "$model" -s "$d/val.en.gz" -t "$d/val.de.gz" -o "$tmp/s.txt" >/dev/null 2>&1 || fail "shortlist"
tgt_vocab=$(head -1 "$tmp/s.txt" | cut -d' ' -f3)
{ echo "gloss-shortlist 1 $tgt_vocab 50000000"; tail -n +2 "$tmp/s.txt"; } >"$tmp/big.txt"
expect_bounded "shortlist of 5e7 source ids" "big.txt:1: was built for vocabularies of 50000000 and $tgt_vocab subwords" -- \
  "$gloss" translate -m "$model" --shortlist "$tmp/big.txt" -i "$tmp/in.en"
# A cut shortlist (it would silently drop the lists of every source subword after the cut).
lines=$(wc -l <"$tmp/s.txt")
head -n $((lines / 2)) "$tmp/s.txt" >"$tmp/half.txt"
expect_error "shortlist cut at a line" "half.txt:$((lines / 2)): ends after $((lines / 2 - 2)) of" -- \
  "$gloss" translate -m "$model" --shortlist "$tmp/half.txt" -i "$tmp/in.en"
head -c $(($(stat -c %s "$tmp/s.txt") / 2)) "$tmp/s.txt" >"$tmp/cut.txt"
expect_error "shortlist cut inside a line" "is cut short here (no line break)" -- \
  "$gloss" translate -m "$model" --shortlist "$tmp/cut.txt" -i "$tmp/in.en"

# A user's path problem is one line naming it, exit 2, no partial file (defect 7).
ln -s loop "$tmp/loop"
touch "$tmp/regular"
expect_error "symbolic link loop as input" "loop: cannot open: Too many levels of symbolic links" -- \
  "$gloss" translate -m "$model" -i "$tmp/loop"
expect_error "symbolic link loop as model" "loop: cannot open: Too many levels of symbolic links" -- \
  "$gloss" translate -m "$tmp/loop" -i "$tmp/in.en"
expect_error "output under a regular file" "regular: Not a directory" -- \
  "$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/regular/out.de"
expect_error "model under a regular file" "regular/x.gloss: write failed: Not a directory" -- \
  "$gloss" average -o "$tmp/regular/x.gloss" "$model"
# `gloss average -o run/checkpoint.*.gckpt`: the glob's first checkpoint would be the output.
cp "$model" "$tmp/own.gloss"
expect_error "average over a checkpoint's name" "checkpoint.10.gckpt: a checkpoint's name (.gckpt), but gloss average writes a model file" -- \
  "$gloss" average -o "$tmp/checkpoint.10.gckpt" "$tmp/own.gloss"
expect_error "average over its input" "own.gloss: is also an input of gloss average; give -o a new file name" -- \
  "$gloss" average -o "$tmp/./own.gloss" "$tmp/own.gloss"
[ ! -e "$tmp/checkpoint.10.gckpt" ] && cmp -s "$model" "$tmp/own.gloss" && pass || fail "gloss average wrote over a refused output"
expect_error "run folder under a regular file" "regular' is a file, not a folder; choose another run.workdir" -- \
  "$gloss" train --data.train_src "$d/val.en.gz" --data.train_tgt "$d/val.de.gz" --run.workdir "$tmp/regular/run"
expect_error "translation to a full disk" "/dev/full: write failed" -- "$gloss" translate -m "$model" -i "$tmp/in.en" -o /dev/full
mkdir "$tmp/small"
if mount -t tmpfs -o size=1m tmpfs "$tmp/small" 2>/dev/null; then  # as root: a full disk of our own
  head -c 1000000 /dev/zero >"$tmp/small/fill" 2>/dev/null
  expect_error "model to a full disk" "x.gloss: write failed: No space left on device" -- \
    "$gloss" average -o "$tmp/small/x.gloss" "$model"
  zcat "$d/val.en.gz" >"$tmp/val.en"
  expect_error "translation to a full disk" "out.de: write failed" -- \
    "$gloss" translate -m "$model" -i "$tmp/val.en" -o "$tmp/small/out.de"
  [ "$(ls "$tmp/small")" = "fill" ] && pass || fail "partial files left on the full disk: $(ls "$tmp/small")"
  umount "$tmp/small"
fi
# Inputs read more than once refuse pipes in one line instead of reading them empty (defect 6);
# streams are fine where one pass is enough.
expect_error "model from a pipe" "is a pipe or device, which can be read only once" -- \
  "$gloss" translate -m <(cat "$model") -i "$tmp/in.en"
expect_error "corpus from a pipe" "--data.train_src: is a pipe or device" -- \
  "$gloss" train --data.train_src <(zcat "$d/val.en.gz") --data.train_tgt "$d/val.de.gz" --run.workdir "$tmp/never"
expect_error "corpus that is a folder" "--data.train_src: is a folder, not a file" -- \
  "$gloss" recipe check "$src/recipes/quick-en-de.ini" --data.train_src "$tmp"
[ "$("$gloss" translate -m "$model" -i <(cat "$tmp/in.en") --progress 2>/dev/null | wc -l)" -eq 2 ] && pass \
  || fail "translate -i <(...) with --progress (its line count must not consume the pipe)"
# Endless or binary inputs end at a bounded line length, not in memory growing without bound.
expect_streaming_error "translate /dev/zero" "/dev/zero:1: a line longer than 16 MiB" -- \
  timeout 60 "$gloss" translate -m "$model" -i /dev/zero
# Standard input from a device or pipe is read as it arrives (util/gz.h): the same bounds and
# the same errors for cut gzip data as a file has.
expect_streaming_error "translate standard input from /dev/zero" "-:1: a line longer than 16 MiB" -- \
  timeout 60 bash -c '"$0" translate -m "$1" </dev/zero' "$gloss" "$model"
expect_streaming_error "translate a gzip stream cut short" "the compressed data ends here, cut short" -- \
  timeout 60 bash -c 'zcat "$2" | gzip | head -c 20000 | "$0" translate -m "$1" -b 1' "$gloss" "$model" "$d/val.en.gz"
printf 'include = /dev/zero\n' >"$tmp/zero.ini"
expect_error "recipe including /dev/zero" "/dev/zero:1: a line longer than 16 MiB" -- timeout 60 "$gloss" recipe check "$tmp/zero.ini"
head -c 23 "$model" >"$tmp/short.gloss"
expect_error "23-byte model" "short.gloss: is truncated (23 bytes, less than the 24-byte header)" -- \
  "$gloss" translate -m "$tmp/short.gloss" -i "$tmp/in.en"

# Numbers that size allocations or loops have maxima (defect 5).
expect_error "translate --max-len-add" "--max-len-add must be between 0 and 10000" -- \
  "$gloss" translate -m "$model" --max-len-add 100000000 -i "$tmp/in.en"
expect_error "translate --beam-size" "--beam-size must be between 1 and 1000" -- \
  "$gloss" translate -m "$model" --beam-size 100000000 -i "$tmp/in.en"
expect_error "recipe train.batch_size" "train.batch_size must be at most 100000" -- \
  "$gloss" recipe check "$src/recipes/quick-en-de.ini" --train.batch_size 1000000000
expect_error "recipe subword.vocab_size" "subword.vocab_size must be at most 2097152" -- \
  "$gloss" recipe check "$src/recipes/quick-en-de.ini" --subword.vocab_size 1950000000
finish
