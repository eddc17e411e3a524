# examples/adapters/poseidon_install.sh  (from safesvd's checkout)
python3.11 -m venv .venv-poseidon
.venv-poseidon/bin/pip install torch torchvision       # a matching pair (Poseidon: torch>=2.0.1, torchvision>=0.15.2)
.venv-poseidon/bin/pip install -e path/to/poseidon -e '.[poseidon]'   # from safesvd's checkout
