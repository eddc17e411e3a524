# examples/adapters/full_venv.sh  (from the repository root)
python3.11 -m venv .venv-full
.venv-full/bin/pip install torch==2.14.1 torchvision==0.29.1                  # 1 min 24 s, 5.5 GB
.venv-full/bin/pip install -e '.[test,transformers,timm,the_well,neuraloperator]'  # about 1 min 10 s
