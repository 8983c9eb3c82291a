#!/usr/bin/env bash
# GPU session part 2: Stacked MNIST WGAN-GP (DCGAN) for a fixed wall-clock budget, then its
# modes and KL on 26,000 samples with the cached MNIST classifier.
set -u
python3 -m pip install -q --no-deps wheels/POT-*.whl 2>&1 | tail -1
export PYTHONPATH=$PWD/src WGAN_OFFLINE=1 WGAN_CACHE=$PWD/datacache
BUDGET=${BUDGET:-400}
python3 benchmarks/speed.py --device cuda --configs dcgan32 --compile --warmup 5 --steps 20 --rounds 2 2>&1 | grep -v "^ " | tail -3
RUN=/tmp/stacked
timeout -s TERM $BUDGET python3 -m wgan train --data stacked-mnist --data-dir datacache/mnist --model dcgan \
  --loss wgan-gp --device cuda --steps 1000000 --checkpoint-every 2000 --log-every 500 --quiet --out $RUN
echo "train exit $?"
python3 -m wgan eval $RUN --json --n 2000 > $OUT/stacked-eval.json
cat $OUT/stacked-eval.json
python3 -m wgan sample $RUN --n 64 --out $OUT/stacked-samples.png
cp $RUN/metrics.csv $OUT/stacked-metrics.csv; cp $RUN/config.json $OUT/stacked-config.json
tail -3 $RUN/metrics.csv
