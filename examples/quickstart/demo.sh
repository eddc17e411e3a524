# examples/quickstart/demo.sh
safesvd demo --ratios 0.6 0.4 --out demo-out                # the table; the folder demo-out/
safesvd inspect demo-out/ratio-0.4                          # ranks, shapes, parameters, fallbacks, λ and α
safesvd evaluate demo-out/ratio-0.4 --horizons 1 8          # signed changes, one step and along rollouts
safesvd export demo-out/ratio-0.4 --dense demo-dense.safetensors   # for users without safesvd
