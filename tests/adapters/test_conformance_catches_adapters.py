"""The adapter suite's block-chaining and rollout checks can fail: each runs on a deliberately broken
generic adapter and names the break."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from safesvd_core.plugin import registry

import test_conformance_adapters as adapters


def _generic(method: str, body) -> type:
    """The generic adapter with ``method`` replaced."""
    base = type(registry("model_adapter").create("generic"))
    return type(f"Broken{method}", (base,), {method: body})


def test_the_adapter_suite_catches_a_wrong_next_block_input():
    broken = _generic(
        "next_block_input", lambda self, output: (output[0] if isinstance(output, tuple) else output) + 1
    )
    case = adapters.TestGenericTransformerEncoder()
    case.make_adapter = lambda: broken(**case.options)
    with pytest.raises(AssertionError, match="next_block_input picks another"):
        case.test_next_block_input_is_what_the_next_block_receives()


def test_the_adapter_suite_catches_a_rollout_that_ignores_the_state():
    def rollout_step(self, sequence: Any, state: Any, step: int) -> Any:
        return super(type(self), self).rollout_step(sequence, None, step)

    broken = _generic("rollout_step", rollout_step)
    case = adapters.TestGenericPointwiseConvs()
    options: Mapping[str, Any] = case.options
    case.make_adapter = lambda: broken(**options)
    with pytest.raises(AssertionError, match="the state is not the input"):
        case.test_rollout_steps_target_the_true_states_from_the_given_state()
