#!/usr/bin/env bash
# The README's user path on a folder of ACDC slices exported as a user's PNGs (results/user-folder/README.md).
# Run from an empty work folder (the data and runs stay there, out of the repository):
#   bash /path/to/sizeseg/results/user-folder/commands.sh /path/to/sizeseg ../shared/data/ACDC [SEED]
# SEED (default 0) sets the split, the masked subset, the initialisation and the batch order.
set -euo pipefail
REPO=$1; ACDC=$2; SEED=${3:-0}
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# the folder: 200 images of 320x320, 70 with masks, 130 with sizes only (sizes measured on the PNG masks)
[ -d data ] || python "$REPO/scripts/acdc_user_folder.py" --data "$ACDC" --out data
# 1. prepare (--shape 96 96: the README's way to choose the working shape; the default, 256x256, costs 7x the
#    CPU time per step, too much for the 2-core machine this ran on beside other training)
[ -d prepared/mine ] || sizeseg prepare folder --images data/images --masks data/masks --sizes data/sizes.csv --out prepared/mine \
    --shape 96 96 --seed $SEED | tee prepare.log
# 2. pre-train on the masks
[ -f runs/pre/checkpoints/best.ckpt ] || sizeseg pretrain --data prepared/mine --out runs/pre --model unet-plain --seed $SEED | tee pretrain.log
# 3. will sizes help?
sizeseg oracle --checkpoint runs/pre/checkpoints/best.ckpt --data prepared/mine --out runs/oracle | tee oracle.log
# 4. fine-tune on the sizes; mixed; and the control: the same schedule on the masks alone (size weight 0).
#    --epochs 10 (64 steps each): the default 50 with patience 5 ran on while validation E kept falling
#    (36 -> 9 in 11 epochs, finetune-50epochs-stopped.log), more time than this session had
sizeseg finetune --seed $SEED --data prepared/mine --out runs/ft --init runs/pre/checkpoints/best.ckpt --lr 1e-4 \
    --epochs 10 | tee finetune.log
sizeseg finetune --seed $SEED --data prepared/mine --out runs/mixed --init runs/pre/checkpoints/best.ckpt --lr 1e-4 --mixed \
    --epochs 10 | tee mixed.log
sizeseg finetune --seed $SEED --data prepared/mine --out runs/control --init runs/pre/checkpoints/best.ckpt --lr 1e-4 --mixed \
    --size-weight 0 --epochs 10 | tee control.log
# with the area bounds the sizes imply (results/sizes-acdc/): mixed, and sizes only
sizeseg finetune --seed $SEED --data prepared/mine --out runs/mixed-area --init runs/pre/checkpoints/best.ckpt --lr 1e-4 --mixed \
    --area-weight 0.01 --epochs 10 | tee mixed-area.log
sizeseg finetune --seed $SEED --data prepared/mine --out runs/ft-area --init runs/pre/checkpoints/best.ckpt --lr 1e-4 \
    --area-weight 0.01 --epochs 10 | tee ft-area.log
# the same two in image units (README step 4): weights that hold at any --shape; at 96x96 these are
# 4/96^2 = 4.3e-4 and 40/96^2 = 4.3e-3 per pixel, where the two runs above used 1e-3 and 0.01
sizeseg finetune --seed $SEED --data prepared/mine --out runs/mixed-area-image --init runs/pre/checkpoints/best.ckpt --lr 1e-4 \
    --mixed --size-units image --size-weight 4 --area-weight 40 --epochs 10 | tee mixed-area-image.log
sizeseg finetune --seed $SEED --data prepared/mine --out runs/ft-area-image --init runs/pre/checkpoints/best.ckpt --lr 1e-4 \
    --size-units image --size-weight 4 --area-weight 40 --epochs 10 | tee ft-area-image.log
# 5. score each on the test split, and write masks at each source image's size
for run in pre ft mixed control mixed-area ft-area mixed-area-image ft-area-image; do
  sizeseg evaluate --checkpoint runs/$run/checkpoints/best.ckpt --data prepared/mine --split test \
      --out runs/eval-$run | tee evaluate-$run.log
done
sizeseg predict --checkpoint runs/ft/checkpoints/best.ckpt --data prepared/mine --out runs/pred --original-size \
    | tee predict.log
