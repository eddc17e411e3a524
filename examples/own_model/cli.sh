# examples/own_model/cli.sh  (run from the repository root)
safesvd compress examples/own_model/config.toml --out own-model-out
safesvd inspect own-model-out/ratio-0.4
safesvd evaluate own-model-out/ratio-0.4 --trust-code --data navier_stokes --data-option samples=16 --data-option seed=7
safesvd export own-model-out/ratio-0.4 --trust-code --dense own-model-dense.safetensors   # your factory: your code
