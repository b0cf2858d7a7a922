#!/usr/bin/env bash
# Checks a signed adapter directory with the OpenSSF model-signing verifier from PyPI (not ours):
#
#   .ci/training/check_model_signing.sh DIR SIGNATURE_NAME PUBLIC_KEY_PEM
#
# DIR/SIGNATURE_NAME is the bundle `substrate` wrote; PUBLIC_KEY_PEM the signing key's public half.
# Runs `model_signing verify key` from the venv .ci/training/install makes (override the program
# with SUBSTRATE_MODEL_SIGNING), then makes sure the check has teeth: a copy of DIR with one byte
# of one file flipped must be refused. Prints one `ok`/`FAIL model-signing: ...` line per check and
# exits non-zero if any fails.
set -euo pipefail

if [ "$#" -ne 3 ]; then
    echo "usage: $0 DIR SIGNATURE_NAME PUBLIC_KEY_PEM" >&2
    exit 2
fi
DIR="$1"
SIGNATURE_NAME="$2"
PUBLIC_KEY="$3"
CACHE="${SUBSTRATE_CACHE:-$HOME/.cache/substrate}"
MODEL_SIGNING="${SUBSTRATE_MODEL_SIGNING:-$CACHE/training-venv/bin/model_signing}"

fail() {
    echo "FAIL model-signing: $*"
    exit 1
}

[ -x "$MODEL_SIGNING" ] || fail "$MODEL_SIGNING is missing; run .ci/training/install"
[ -d "$DIR" ] || fail "$DIR is not a directory"
[ -f "$DIR/$SIGNATURE_NAME" ] || fail "no signature $DIR/$SIGNATURE_NAME; sign the directory first"
[ -f "$PUBLIC_KEY" ] || fail "no public key at $PUBLIC_KEY"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# verify DIR: model_signing's verdict on DIR against its signature inside it; its output goes to
# $WORK/out. Success needs both the exit code and the line it prints, so a tool that changed its
# exit conventions cannot pass a directory silently.
verify() {
    local rc=0
    "$MODEL_SIGNING" verify key --signature "$1/$SIGNATURE_NAME" --public_key "$PUBLIC_KEY" "$1" \
        >"$WORK/out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] && grep -q "Verification succeeded" "$WORK/out"
}

if verify "$DIR"; then
    echo "ok model-signing: $DIR verifies"
else
    fail "$DIR does not verify: $(tail -n 3 "$WORK/out" | tr '\n' ' ')"
fi

# The negative check: flip the low bit of the first byte of the first non-empty signed file (git
# paths and the signature itself are not signed, so tampering with them would prove nothing).
COPY="$WORK/copy"
cp -a "$DIR" "$COPY"
target="$(cd "$COPY" && find . -type f -size +0 \
    ! -path "./$SIGNATURE_NAME" ! -path './.git/*' ! -path './.github/*' \
    ! -name .gitattributes ! -name .gitignore -print | LC_ALL=C sort | head -n 1)"
[ -n "$target" ] || fail "$DIR holds no non-empty signed file to tamper with"
byte="$(head -c 1 "$COPY/$target" | od -An -tu1 | tr -d ' ')"
# shellcheck disable=SC2059 # the format is the escaped byte itself
printf "\\$(printf '%03o' $((byte ^ 1)))" | dd of="$COPY/$target" bs=1 count=1 conv=notrunc status=none

if verify "$COPY"; then
    fail "a copy of $DIR with a byte of ${target#./} flipped still verifies"
fi
echo "ok model-signing: a tampered copy is refused"
