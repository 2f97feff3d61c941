#!/usr/bin/env bash
# GPU check: run this the moment a GPU is lent (one command, at most 8 minutes on one GPU):
#
#   bash benchmarks/gpu_check.sh            # writes benchmarks/results/*_cuda.json + gpu_check_cuda.json
#   bash benchmarks/gpu_check.sh --quick    # tiny sizes: checks the script itself (runs on a CPU too)
#
# Steps (each under its own time limit; a failed step is recorded and the next one runs):
#   1. loss benchmark: MONAI Dice vs fused blob Dice, N = 1, 10, 100, 1000 instances per crop,
#      8 crops of 192x192x32 (benchmarks/loss_speed.py)
#   2. training-step benchmark: Dice vs blob Dice, fp32 and bf16, the paper's BasicUNet on the MS patch
#      (2 channels, 192x192x32, batch 4 cases x 2 crops) (benchmarks/gpu_check.py train-steps)
#   3. a 1-GPU DDP run of a few steps through the multi-rank path (NCCL) (benchmarks/gpu_check.py ddp)
#   4. a 2-minute real pipeline run of the demo (config/config.yaml, fewer epochs) on the GPU
# Without a GPU it prints a "no GPU" line and exits 0 (with --quick it then runs the tiny steps on the CPU).
# Exit status: 0 when every step passed (or there is no GPU), 1 when a step failed.
# Output folder: $GPU_CHECK_OUT (default benchmarks/results).
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT="${GPU_CHECK_OUT:-benchmarks/results}"
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
START=$(date +%s)

if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  DEV=cuda
  "$PY" -c "import torch; print('gpu_check: GPU', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
else
  DEV=cpu
  echo "gpu_check: no GPU (torch.cuda.is_available() is False); nothing to measure here."
  if [ "$QUICK" = 0 ]; then
    exit 0
  fi
  echo "gpu_check: --quick: running the steps with tiny sizes on the CPU to check the script."
fi

declare -A STATUS
step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "gpu_check: [$name] (limit ${limit} s)"
  local t0=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  STATUS[$name]="$rc $(( $(date +%s) - t0 ))"
  [ "$rc" = 0 ] || echo "gpu_check: [$name] FAILED (exit $rc)"
}

if [ "$QUICK" = 1 ]; then
  step loss 300 "$PY" benchmarks/loss_speed.py --device "$DEV" --batch 2 --shape 32 32 16 --instances 1 10 \
    --repeats 2 --warmup 1 --skip-memory --out "$OUT/loss_speed_${DEV}_quick.json"
  step train_steps 300 "$PY" benchmarks/gpu_check.py train-steps --quick --out "$OUT/train_step_${DEV}_quick.json"
  step ddp 300 "$PY" benchmarks/gpu_check.py ddp --quick --out "$OUT/ddp_${DEV}_quick.json"
  step pipeline 300 "$PY" -m snakemake --snakefile Snakefile --directory "$(mktemp -d)" --cores 2 -n --quiet
else
  step loss 150 "$PY" benchmarks/loss_speed.py --device cuda --instances 1 10 100 1000 --repeats 10 \
    --loop-max-instances 100 --out "$OUT/loss_speed_cuda.json"
  step train_steps 120 "$PY" benchmarks/gpu_check.py train-steps --out "$OUT/train_step_cuda.json"
  step ddp 90 "$PY" benchmarks/gpu_check.py ddp --out "$OUT/ddp_cuda.json"
  # the demo on the GPU: its config with 10 epochs (instead of 30), so the whole DAG fits in ~2 minutes
  WORK=$(mktemp -d)
  "$PY" - "$WORK/config.yaml" <<'PYEOF'
import sys, yaml
cfg = yaml.safe_load(open("config/config.yaml"))
for ds in cfg["datasets"].values():
    ds["training"]["epochs"] = 10
yaml.safe_dump(cfg, open(sys.argv[1], "w"))
PYEOF
  step pipeline 150 "$PY" -m snakemake --snakefile Snakefile --directory "$WORK" --configfile "$WORK/config.yaml" \
    --cores all --resources gpu=1
  "$PY" - "$WORK" "$OUT/pipeline_cuda.json" "${STATUS[pipeline]}" <<'PYEOF'
import json, pathlib, sys
work, out, status = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].split()
logs = sorted((work / "results" / "logs" / "train").rglob("*.log"))
on_gpu = [str(p.relative_to(work)) for p in logs if "CUDA_VISIBLE_DEVICES=0" in p.read_text()]
table = work / "results" / "tables" / "table1.md"
json.dump({"exit": int(status[0]), "seconds": int(status[1]), "train_logs": len(logs), "train_on_gpu": on_gpu,
           "table1": table.read_text() if table.exists() else None}, open(out, "w"), indent=2)
print("gpu_check: pipeline:", "table1 written" if table.exists() else "no table1", f"({status[1]} s)")
PYEOF
fi

"$PY" - "$OUT/gpu_check_${DEV}$([ "$QUICK" = 1 ] && echo _quick).json" "$DEV" "$QUICK" "$(( $(date +%s) - START ))" \
  "$(for k in "${!STATUS[@]}"; do echo "$k=${STATUS[$k]// /:}"; done)" <<'PYEOF'
import datetime, json, sys
out, dev, quick, total, status = sys.argv[1:6]
steps = {}
for item in status.split():
    name, _, value = item.partition("=")
    rc, sec = value.split(":")
    steps[name] = {"exit": int(rc), "seconds": int(sec)}
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "device": dev,
           "quick": quick == "1", "total_seconds": int(total), "steps": steps}, open(out, "w"), indent=2)
print(f"gpu_check: wrote {out}; total {total} s; steps:",
      ", ".join(f"{k} {'ok' if v['exit'] == 0 else 'FAILED'}" for k, v in sorted(steps.items())))
PYEOF
for k in "${!STATUS[@]}"; do
  [ "${STATUS[$k]%% *}" = 0 ] || exit 1   # a failed step fails the check
done
exit 0
