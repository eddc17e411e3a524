# examples/distributed/run.sh  (run in examples/distributed)
torchrun --nproc-per-node 4 compress_model.py          # one node, 4 GPUs (nccl)
torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 compress_model.py
