#!/usr/bin/env bash
# The short CPU training runs reported in benchmarks/RESULTS.md (issue #4), two at a time with one torch
# thread each, so that the two models of a pair train side by side under the same conditions.
#   bash benchmarks/paper_runs.sh deconvolution   # 10-minute 3-layer deconvolution run (+ demo weights)
#   bash benchmarks/paper_runs.sh comparison      # pm-inverse, DiffNet vs U-Net at equal wall clock
set -euo pipefail
out=${RUNS:-runs}
budget=${BUDGET:-300}
common=(--data natural --image-size 96 --test-size 100 --batch-size 16 --threads 1 --quiet --cache-dir "$out/cache")

case "${1:-}" in
deconvolution)
    diffnet-torch train --model diffnet --task deconvolution --data disks --train-size 1024 --test-size 128 \
        --image-size 64 --epochs 14 --layers 3 --lr 2e-3 --lr-final 2e-5 --time-budget 600 --threads 1 \
        --quiet --out "$out/disks_deconvolution_600s" &
    diffnet-torch train --model diffnet --task pm-inverse --data natural --exclude camera --noise 0.01 \
        --train-size 2048 --test-size 128 --image-size 64 --epochs 6 --lr 2e-3 --lr-final 4e-6 --layers 5 \
        --time-budget 900 --threads 1 --quiet --out "$out/natural_pm_inverse" &
    wait
    ;;
comparison)
    for noise in 0 0.01; do
        for n in 100 1000; do
            epochs=$(( n == 100 ? 30 : 3 ))
            for model in diffnet unet; do
                diffnet-torch train --model "$model" --task pm-inverse --noise "$noise" --train-size "$n" \
                    --epochs "$epochs" --time-budget "$budget" "${common[@]}" \
                    --out "$out/pm_inverse_noise${noise}_n${n}_${model}" &
            done
            wait
        done
    done
    ;;
*)
    echo "usage: $0 deconvolution|comparison" >&2
    exit 2
    ;;
esac
