#!/usr/bin/env bash
# GPU session part 1: install POT offline, smoke-test the CUDA paths, run the speed benchmark.
set -u
python3 -m pip install -q --no-deps wheels/POT-*.whl 2>&1 | tail -1
export PYTHONPATH=$PWD/src WGAN_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
python3 -m wgan train --data grid25 --device cuda --steps 300 --quiet --out $OUT/grid25-cuda 2>&1 | tail -12
python3 -m wgan train --data mnist --data-dir datacache/mnist --model dcgan --device cuda --amp bf16 \
   --steps 200 --quiet --eval-samples 1000 --out $OUT/mnist-bf16 2>&1 | tail -8
for amp in none bf16; do
  python3 benchmarks/speed.py --device cuda --amp $amp --warmup 5 --steps 20 --rounds 3 --json $OUT/speed.jsonl 2>&1 | grep -v "^ "
done
python3 benchmarks/speed.py --device cuda --configs dcgan32 dcgan64 --compile --warmup 5 --steps 20 --rounds 3 --json $OUT/speed.jsonl 2>&1 | grep -v "^ " | tail -5
# The fast penalty's effect alone (the Trainer with the stock layers against the reference).
python3 benchmarks/speed.py --device cuda --configs mnist-gp resnet mlp --no-fast-penalty --warmup 5 --steps 20 --rounds 3 --json $OUT/speed.jsonl 2>&1 | grep -v "^ "
