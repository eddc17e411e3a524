# examples/zoo/reproduce.sh  (from the repository root)
.venv/bin/python benchmarks/train_reference.py            # ns2d-transformer
.venv/bin/python benchmarks/train_zoo.py scot-ns
.venv-full/bin/python benchmarks/train_zoo.py avit-multiphysics
.venv-full/bin/python benchmarks/train_zoo.py vit-timm
.venv/bin/python -m benchmarks.train_fno                  # fno-ns (neuraloperator)
.venv-full/bin/python -m benchmarks.train_sfno            # sfno-swe (torch-harmonics)
