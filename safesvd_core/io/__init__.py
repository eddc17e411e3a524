"""Files: compressed models and their manifests, checkpoints, dense export, Hugging Face folders,
fingerprints."""
