#!/bin/bash
# Faster R-CNN (ResNet-18 FPN, from scratch and from a ResNet-18 classifier trained on generated shapes)
# against tiny_ssd_plus on real photographs, each for the same wall-clock budget (--time, hours).
# The three runs start together, one thread each, so they share the machine alike.
#
#   bash experiments/raccoon_compare.sh ../shared/datasets/raccoon runs/raccoon 1
#
# Then: tail -n 3 runs/raccoon/*/results.csv, or detector eval --weights runs/raccoon/<run>/best.pt --data DATA
set -euo pipefail
DATA=${1:?usage: raccoon_compare.sh DATA OUT [HOURS]}
OUT=${2:?usage: raccoon_compare.sh DATA OUT [HOURS]}
HOURS=${3:-1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
[ -f data/shapes/dataset.yaml ] || detector data synth --out data/shapes --preset shapes
[ -f "$OUT/cls-r18/best.pt" ] || OMP_NUM_THREADS=2 detector classify train --model resnet18 --data data/shapes \
  --optimizer adamw --lr 1e-3 --schedule cosine --img-size 64 --epochs 8 --workers 1 --device cpu --out "$OUT/cls-r18" > "$OUT/cls-r18.log" 2>&1
# a light Faster R-CNN for the CPU: 128-channel FPN, 512-wide box head, 128 RoIs per image, 600/300 proposals
LIGHT='{"fpn_channels": 128, "representation": 512, "box_batch_size_per_image": 128, "rpn_pre_nms_top_n": [600, 300], "rpn_post_nms_top_n": [600, 300]}'
COMMON=(--data "$DATA" --img-size 256 --time "$HOURS" --epochs 100 --eval-every 2 --workers 1 --device cpu)
detector train --model faster_rcnn --backbone resnet18 --model-kwargs "$LIGHT" --batch-size 8 --lr 1e-3 \
  "${COMMON[@]}" --out "$OUT/frcnn-r18-scratch" > "$OUT/frcnn-r18-scratch.log" 2>&1 &
detector train --model faster_rcnn --backbone resnet18 --model-kwargs "$LIGHT" --batch-size 8 --lr 1e-3 \
  --pretrained "$OUT/cls-r18/best.pt" "${COMMON[@]}" --out "$OUT/frcnn-r18-shapes" > "$OUT/frcnn-r18-shapes.log" 2>&1 &
detector train --model tiny_ssd_plus --batch-size 32 "${COMMON[@]}" --out "$OUT/tiny-ssd-plus" > "$OUT/tiny-ssd-plus.log" 2>&1 &
wait
for run in frcnn-r18-scratch frcnn-r18-shapes tiny-ssd-plus; do
  echo "$run: $(tail -n 1 "$OUT/$run/results.csv")"
done
