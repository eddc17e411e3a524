# examples/readme/setup.sh  (from the repository root)
scripts/setup && .venv/bin/safesvd demo --out demo-out      # set up, compress the bundled reference PFM, print a table
scripts/setup --test && .venv/bin/python -m pytest -q       # set up with test tools, run the tests
