# examples/readme/cli.sh  (my-config.toml: your config, docs/cli.md)
safesvd compress my-config.toml --out my-run       # model + data + recipe → model, manifest, report, figures
safesvd inspect my-run/ratio-0.4                   # ranks, shapes, parameters, fallbacks, λ/α per layer
safesvd evaluate my-run/ratio-0.4 --horizons 1 8   # original against compressed, signed changes
safesvd export my-run/ratio-0.4 --dense plain.safetensors   # dense weights for the original architecture
