"""Inputs and outputs that are not tensors (dicts, dataclasses, namedtuples, tuples, objects holding
tensors): how the tuple-batch adapters call the model on them, score them and roll them out.

- **Calling** (``call``): ``"single"`` calls ``model(input)`` whatever ``input`` is; ``"args"``
  calls ``model(*input)`` (``input`` a tuple or list of the positional arguments); ``"kwargs"``
  calls ``model(**input)`` (``input`` a dict of the keyword arguments).
- **Scoring**: a loss name is applied to every floating tensor place of the target against the
  same place of the prediction and summed, each term weighted by ``weights[place]`` (default 1);
  a place is written as :func:`safesvd_core.plugin.tensor_leaves` names it (``surf_vars.2t``,
  ``[0]``). A callable loss takes the structures as they are.
- **Rolling out**: a trajectory item is ``(input, trajectory)`` where ``trajectory`` has the
  input's structure and each tensor place that changes in time is ``(B, K, *place.shape[1:])``
  (places of the input's own shape are the same at every step; metadata passes through). Each
  prediction becomes the next input, so the model's output must have its input's tensor places
  and shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, map_structure, tensor_leaves

#: How a batch's input is passed to the model.
CALLS = ("single", "args", "kwargs")


def call_model(model: nn.Module, inputs: Any, call: str) -> Any:
    """``model`` called on ``inputs`` as ``call`` says (:data:`CALLS`)."""
    if call == "args":
        if not isinstance(inputs, (tuple, list)):
            raise ConfigError(
                f"with call='args' a batch's input is the tuple of the model's positional arguments; "
                f"got a {type(inputs).__name__}"
            )
        return model(*inputs)
    if call == "kwargs":
        if not isinstance(inputs, Mapping):
            raise ConfigError(
                f"with call='kwargs' a batch's input is the dict of the model's keyword arguments; "
                f"got a {type(inputs).__name__}"
            )
        return model(**inputs)
    try:
        return model(inputs)
    except TypeError as error:
        if isinstance(inputs, (tuple, list, Mapping)) and "argument" in str(error):
            raise TypeError(
                f"{error} (the batch's input is a {type(inputs).__name__}, passed as one argument: "
                "adapter_options={'call': 'args'} calls model(*input), {'call': 'kwargs'} model(**input))"
            ) from error
        raise


def structured_loss(
    loss: Callable[[Tensor, Tensor], Tensor],
    prediction: Any,
    target: Any,
    weights: Mapping[str, float] | None = None,
) -> Tensor:
    """``Σ_place weights[place] · loss(prediction[place], target[place])`` over the floating tensor
    places of ``target``."""
    predicted = dict(tensor_leaves(prediction))
    expected = [(place, leaf) for place, leaf in tensor_leaves(target) if leaf.is_floating_point()]
    unknown = sorted(set(weights or {}) - {place for place, _ in expected})
    if unknown:
        raise ConfigError(
            f"leaf_weights names {unknown}, which are no floating tensor places of the target; "
            f"they are {[place for place, _ in expected]}"
        )
    total = None
    for place, wanted in expected:
        weight = 1.0 if weights is None else float(weights.get(place, 1.0))
        if weight == 0.0:
            continue
        if place not in predicted:
            raise ConfigError(
                f"the target holds a tensor at {place}, where the model's output "
                f"({type(prediction).__name__}) has none"
            )
        term = loss(predicted[place], wanted)
        term = term if weight == 1.0 else weight * term
        total = term if total is None else total + term
    if total is None:
        raise ConfigError(f"the target ({type(target).__name__}) holds no floating tensor to score")
    return total


def trajectory_steps(inputs: Any, target: Any) -> int | None:
    """The ``K`` of a structured trajectory item (see the module's docstring), else ``None``."""
    given, future = dict(tensor_leaves(inputs)), dict(tensor_leaves(target))
    if not given or given.keys() != future.keys():
        return None
    steps = set()
    for place, start in given.items():
        states = future[place]
        if states.shape == start.shape:
            continue
        if not (
            states.ndim == start.ndim + 1
            and start.ndim >= 1
            and states.shape[0] == start.shape[0]
            and states.shape[2:] == start.shape[1:]
        ):
            return None
        steps.add(int(states.shape[1]))
    return steps.pop() if len(steps) == 1 else None


def rollout_target(inputs: Any, trajectory: Any, step: int) -> Any:
    """The true state ``step`` (1-based) of a structured trajectory: its time-stacked places at
    ``step − 1``, the others as they are."""
    given = dict(tensor_leaves(inputs))
    return map_structure(
        lambda place, leaf: (
            leaf[:, step - 1] if isinstance(leaf, Tensor) and leaf.ndim == given[place].ndim + 1 else leaf
        ),
        trajectory,
    )


def check_state(state: Any, inputs: Any) -> None:
    """A prediction fed back as the next input has the input's tensor places and shapes."""
    if _places(state) != _places(inputs):
        raise ConfigError(
            f"a rollout feeds each prediction back as the next input, but the model's output "
            f"{describe(state)} does not have its input's tensor places and shapes {describe(inputs)}, "
            "so this model cannot be rolled out"
        )


def describe(value: Any) -> str:
    """A tensor's shape, or a structure's type and tensor places with their shapes, for messages."""
    if isinstance(value, Tensor):
        return str(tuple(value.shape))
    return f"{type(value).__name__}({', '.join(f'{p} {shape}' for p, shape in _places(value))})"


def _places(value: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(place or "tensor", tuple(leaf.shape)) for place, leaf in tensor_leaves(value)]
