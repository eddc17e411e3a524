"""Hugging Face folders that cannot load through ``from_pretrained`` (issue 28): a shard missing, a class of
another model type, a class of the same type but another structure. Each is one line naming the fix,
raised before the model is changed."""

from __future__ import annotations

import pytest
from torch import nn

from safesvd_core import ConfigError, from_pretrained

from adapter_helpers import optional

optional("transformers")
from transformers import ViTModel  # noqa: E402 - after the transformers check

from safesvd_adapters.scot_like import ScOTLike  # noqa: E402

from test_hf_round_trip import compressed  # noqa: E402


@pytest.fixture(scope="module")
def scot_like():
    return compressed("scot-like")


def test_a_sharded_folder_with_one_shard_missing_names_it(scot_like, tmp_path):
    scot_like.model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("model-*-of-*.safetensors"))
    shards[1].unlink()
    with pytest.raises(
        ConfigError,
        match=f"model.safetensors.index.json lists {len(shards)} weight shards but {shards[1].name} is "
        "missing: copy the folder again, every shard",
    ):
        from_pretrained(ScOTLike, tmp_path / "sharded")


def test_a_class_of_another_model_type_is_named_with_the_one_that_wrote_the_folder(scot_like, tmp_path):
    scot_like.model.save_pretrained(tmp_path / "folder")
    with pytest.raises(
        ConfigError,
        match="holds a 'scot-like' model but ViTModel loads 'vit' ones: pass the class that wrote it "
        "\\(ScOTLike\\)",
    ):
        from_pretrained(ViTModel, tmp_path / "folder")


class _WithoutDecoder(ScOTLike):
    """A class of the same model type whose structure lacks the decoder."""

    def __init__(self, config):
        super().__init__(config)
        self.decoder = nn.Identity()


def test_a_class_of_another_structure_is_named_with_the_one_that_wrote_the_folder(scot_like, tmp_path):
    scot_like.model.save_pretrained(tmp_path / "folder")
    with pytest.raises(
        ConfigError,
        match="_WithoutDecoder has no layer 'decoder\\..*' \\(\\d+ of the folder's \\d+ factored layers "
        "missing\\): another structure; pass the class that wrote it \\(ScOTLike\\)",
    ):
        from_pretrained(_WithoutDecoder, tmp_path / "folder")
