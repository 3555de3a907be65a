#!/usr/bin/env bash
# Trains the demo model (docs/DEMO_MODEL.md) on the GPU machine and leaves it in OUT_DIR:
#   OUT_DIR/demo-model/   the diffusers folder + flux2-klein-base-demo-nvfp4-mixed.safetensors + check/
#   OUT_DIR/train.log     everything train.py printed
# Every file stays below 16 MB. Extra arguments go to train.py (e.g. --time-budget-s 540; --resume FOLDER to train an
# earlier result further: /tmp/flux2-demo-last while the machine is still warm, else a carried copy).
# The wheels of scripts/prepare-demo-train-carry.sh (third_party/demo-wheels, or $FLUX2_DEMO_WHEELS) are installed
# offline into a private folder put first on PYTHONPATH, over the machine's own torch, numpy and Pillow.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/train-demo-model.sh OUT_DIR [train.py options]}
shift
python=${PYTHON:-python3}
wheels=${FLUX2_DEMO_WHEELS:-third_party/demo-wheels}
site=${FLUX2_DEMO_SITE:-/tmp/flux2-demo-site}
if compgen -G "$wheels/*.whl" >/dev/null; then
  rm -rf "$site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "train-demo-model: no wheels in $wheels (scripts/prepare-demo-train-carry.sh); using installed packages" >&2
fi
"$python" -c 'import torch, diffusers, transformers, safetensors, tokenizers, numpy, PIL
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| diffusers", diffusers.__version__,
      "| transformers", transformers.__version__, "| numpy", numpy.__version__, "| Pillow", PIL.__version__)'
mkdir -p "$out"
set -o pipefail
PYTHONUNBUFFERED=1 "$python" tools/demo_model/train.py --out "$out/demo-model" "$@" 2>&1 | tee "$out/train.log"
# Kept on the machine too: while it stays warm, a next call may go on with --resume /tmp/flux2-demo-last
# ($FLUX2_DEMO_LAST, for two runs side by side on two GPUs).
last=${FLUX2_DEMO_LAST:-/tmp/flux2-demo-last}
rm -rf "$last"
cp -r "$out/demo-model" "$last"
find "$out/demo-model" -type f -size +16M -exec echo "train-demo-model: {} is over 16 MB" \; | grep . >&2 && exit 1
du -ab "$out/demo-model" | sort -n | tail -20
