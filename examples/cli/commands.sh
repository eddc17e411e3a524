# examples/cli/commands.sh  (run in examples/cli)
python make_data.py
safesvd compress config.toml --out run --set compress.options.alpha=0.7 --ratio 0.6 0.4
safesvd inspect run/ratio-0.4
safesvd inspect run/ratio-0.4 --json > manifest-copy.json
safesvd evaluate run/ratio-0.4 --horizons 1 2 3
safesvd evaluate run/ratio-0.4 --data navier_stokes --data-option samples=8 --data-option seed=9
safesvd export run/ratio-0.4 --dense dense.safetensors
safesvd compress phases.toml --out phases-run
safesvd refine run/ratio-0.4 config.toml --out refined-0.4
safesvd plugins
