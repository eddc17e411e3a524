# examples/adapters/hf_round_trip.py
"""Hugging Face round trip of a compressed ScOT (here the stand-in; Poseidon's ScOT works the same)."""

import torch
from safesvd_adapters.scot_like import ScOTLike, poseidon_t_like

from safesvd_core import compress, from_pretrained, save_pretrained

model = poseidon_t_like()                  # or ScOT.from_pretrained("camlab-ethz/Poseidon-T")
generator = torch.Generator().manual_seed(0)
batches = [{"pixel_values": torch.randn(2, 4, 64, 64, generator=generator), "time": torch.rand(2, generator=generator),
            "labels": torch.randn(2, 4, 64, 64, generator=generator)} for _ in range(4)]   # Poseidon's dicts
result = compress(model, batches, ratio=0.4, adapter="transformers")

save_pretrained(result, "scot-0.4")        # or result.model.save_pretrained("scot-0.4"), .push_to_hub("me/scot-0.4")
exact = from_pretrained(ScOTLike, "scot-0.4")   # through safesvd: the compressed model, bit for bit
dense = ScOTLike.from_pretrained("scot-0.4")    # without safesvd: its dense equivalent

with torch.no_grad():
    compressed, reloaded, plain = (m(**batches[0]).output for m in (result.model, exact, dense))
print("through safesvd, bit for bit:", torch.equal(reloaded, compressed))
print(f"plain from_pretrained, relative difference: {float((plain - compressed).norm() / compressed.norm()):.1e}")
