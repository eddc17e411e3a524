# examples/poseidon/install.sh  (from safesvd's checkout; path/to/poseidon is a clone of camlab-ethz/poseidon)
python3.11 -m venv .venv-poseidon
.venv-poseidon/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu  # CPU machine: the CPU wheel
.venv-poseidon/bin/pip install -e '.[poseidon,data]'            # safesvd, torch, transformers>=4.40,<5, h5py
.venv-poseidon/bin/pip install --no-deps -e path/to/poseidon    # scOT without its pins (torch==2.0.1, ...)
.venv-poseidon/bin/pip install accelerate                       # scOT.problems (its data sets) imports it
.venv-poseidon/bin/python -c "from scOT.model import ScOT; from scOT.problems.base import get_dataset"
