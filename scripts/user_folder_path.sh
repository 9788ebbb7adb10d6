#!/usr/bin/env bash
# The README's user path on a folder of ACDC slices exported as a user's PNGs (results/user-folder/README.md).
# Run from an empty work folder (the data and runs stay there, out of the repository):
#   bash /path/to/sizeseg/scripts/user_folder_path.sh /path/to/sizeseg ../shared/data/ACDC [SEED] [MODEL] [RUNS]
# SEED (default 0) sets the split, the masked subset, the initialisation and the batch order. MODEL (default
# unet-plain, the network of the first recorded runs) is pre-training's --model; the README's step 2 says
# unet-small. RUNS (default: all) lists the fine-tuning runs, e.g. "control mixed-area-image" for the
# README's step 4 and its control only.
set -euo pipefail
REPO=$1; ACDC=$2; SEED=${3:-0}; MODEL=${4:-unet-plain}
RUNS=${5:-ft mixed control mixed-area ft-area mixed-area-image ft-area-image}
# the recorded runs were picked by validation E, fine-tuning's default when they ran (--monitor val/E keeps
# that); the -iou runs by validation IoU on the 7 masked validation images, what README step 4 does now
declare -A FLAGS=(
  [ft]="--monitor val/E"
  [mixed]="--mixed --monitor val/E"
  [control]="--mixed --size-weight 0 --monitor val/E"
  [mixed-area]="--mixed --area-weight 0.01 --monitor val/E"
  [ft-area]="--area-weight 0.01 --monitor val/E"
  [mixed-area-image]="--mixed --size-units image --size-weight 4 --area-weight 40 --monitor val/E"
  [ft-area-image]="--size-units image --size-weight 4 --area-weight 40 --monitor val/E"
  [control-iou]="--mixed --size-weight 0 --monitor val/IoU"
  [mixed-area-image-iou]="--mixed --size-units image --size-weight 4 --area-weight 40 --monitor val/IoU"
)
for run in $RUNS; do  # before any work
  [ -n "${FLAGS[$run]+set}" ] || { echo "RUNS: unknown run '$run'; expected some of: ${!FLAGS[*]}" >&2; exit 2; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
# the folder: 200 images of 320x320, 70 with masks, 130 with sizes only (sizes measured on the PNG masks)
[ -d data ] || python "$REPO/scripts/acdc_user_folder.py" --data "$ACDC" --out data
# 1. prepare (--shape 96 96: the README's way to choose the working shape; the default, 256x256, costs 7x the
#    CPU time per step, too much for the 2-core machine this ran on beside other training)
[ -d prepared/mine ] || sizeseg prepare folder --images data/images --masks data/masks --sizes data/sizes.csv \
    --out prepared/mine --shape 96 96 --seed "$SEED" | tee prepare.log
# 2. pre-train on the masks
[ -f runs/pre/checkpoints/best.ckpt ] || sizeseg pretrain --data prepared/mine --out runs/pre --model "$MODEL" \
    --seed "$SEED" --progress lines | tee pretrain.log
# 3. will sizes help?
sizeseg oracle --checkpoint runs/pre/checkpoints/best.ckpt --data prepared/mine --out runs/oracle | tee oracle.log
# 4. fine-tune on the sizes; mixed; and the control: the same schedule on the masks alone (size weight 0).
#    --epochs 10 (64 steps each): the default 50 with patience 5 ran on while validation E kept falling
#    (36 -> 9 in 11 epochs, results/user-folder/finetune-50epochs-stopped.log), more time than a session had.
#    mixed-area / ft-area: the area bounds the sizes imply, per pixel (results/sizes-acdc/); the -image runs are
#    the same in image units (README step 4), weights that hold at any --shape: at 96x96, 4/96^2 = 4.3e-4 and
#    40/96^2 = 4.3e-3 per pixel, where the per-pixel runs use 1e-3 and 0.01.
for run in $RUNS; do
  # shellcheck disable=SC2086  # the flags are words
  sizeseg finetune --seed "$SEED" --data prepared/mine --out "runs/$run" --init runs/pre/checkpoints/best.ckpt \
      --lr 1e-4 --epochs 10 --progress lines ${FLAGS[$run]} | tee "$run.log"
done
# 5. score each on the test split, and write masks at each source image's size
for run in pre $RUNS; do
  sizeseg evaluate --checkpoint "runs/$run/checkpoints/best.ckpt" --data prepared/mine --split test \
      --out "runs/eval-$run" | tee "evaluate-$run.log"
done
first=${RUNS%% *}
sizeseg predict --checkpoint "runs/$first/checkpoints/best.ckpt" --data prepared/mine --out runs/pred --original-size \
    | tee predict.log
