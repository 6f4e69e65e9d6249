#!/bin/bash
# Each training-recipe option alone against the defaults, then all together, on one data set, for the same
# wall-clock budget (--time, hours). Runs go three at a time, one thread each, so they share the machine alike.
# Every run starts from the recipe these tables measured, batch 32 (the default before batch 8 became the CPU
# default); bs8 and bs8-aug override it.
#
#   bash experiments/recipe_ablation.sh ../shared/datasets/raccoon runs/ablation-raccoon 0.3
#   bash experiments/recipe_ablation.sh data/shapes-500s5 runs/ablation-shapes-45m 0.75 default mosaic mixup multiscale bs8 img320
#
# The raccoon model's candidates (bs8, bs8-aug) ran for 1.25 h, two at a time:
#   bash experiments/recipe_ablation.sh ../shared/datasets/raccoon runs/raccoon-final 1.25 bs8 bs8-aug
#
# Then: python experiments/recipe_table.py runs/ablation-raccoon (val AP/AP50 of each run's last and best epoch).
set -euo pipefail -f
DATA=${1:?usage: recipe_ablation.sh DATA OUT [HOURS] [RUN...]}
OUT=${2:?usage: recipe_ablation.sh DATA OUT [HOURS] [RUN...]}
HOURS=${3:-0.3}
shift $(( $# < 3 ? $# : 3 ))
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
declare -A OPTS=(
  [default]=""
  [letterbox]="--letterbox"
  [ema]="--ema-decay 0.9999"
  [mosaic]="--mosaic 0.5"
  [mixup]="--mixup 0.1"
  [multiscale]="--multi-scale 0.5"
  [img320]="--img-size 320 --anchors auto"
  [wide]="--model-kwargs {\"base_channels\":[32,64,128],\"channels\":256}"
  [all]="--letterbox --ema-decay 0.9999 --mosaic 0.5 --mixup 0.1 --multi-scale 0.5"
  [bs8]="--batch-size 8"
  [bs8-aug]="--batch-size 8 --mosaic 0.5 --mixup 0.1 --ema-decay 0.9999"
)
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(default letterbox ema mosaic mixup multiscale img320 wide all)
mkdir -p "$OUT"
i=0
for run in "${RUNS[@]}"; do
  [ -n "${OPTS[$run]+x}" ] || { echo "unknown run: $run (one of ${!OPTS[*]})" >&2; exit 2; }
  # shellcheck disable=SC2086
  detector train --model tiny_ssd_plus --data "$DATA" --time "$HOURS" --epochs 400 --eval-every 2 --workers 1 \
    --device cpu --seed 0 --batch-size 32 ${OPTS[$run]} --out "$OUT/$run" > "$OUT/$run.log" 2>&1 &
  i=$((i + 1))
  if (( i % 3 == 0 )); then wait; fi
done
wait
