"""Batches and outputs as users have them: tensors inside dicts, lists, tuples, namedtuples,
dataclasses and objects, walked leaf by leaf. One walker serves the item checks, the device moves,
the losses and the rollouts.

A *node* is a container whose children the walker visits, in this order of precedence:

1. a class given to :func:`register_structure`;
2. what ``torch.utils._pytree`` flattens (dict, list, tuple, namedtuple, OrderedDict, ... and the
   classes registered with it);
3. any other mapping (rebuilt as a dict);
4. a dataclass instance (its fields);
5. an object keeping tensors in its ``__dict__`` (its attributes), unless it has a ``to`` method:
   such an object (a DGL graph, a PyG ``Data``) is a leaf that moves itself.

Everything else is a *leaf*: a tensor, or metadata (a datetime, a string, a number) that passes
through untouched. An object keeping tensors in ``__slots__`` cannot be walked unless its class
is registered: meeting one is a :class:`ConfigError` that says so. A node is rebuilt without
calling its ``__init__`` (a shallow copy with the new children set), so that a frozen dataclass
or one with ``init=False`` fields comes back as it was.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch.utils._pytree as pytree
from torch import Tensor, nn

from ._errors import ConfigError

#: ``flatten(obj) -> {name: child}`` and ``unflatten({name: child}) -> obj`` per registered class
#: (``(None, None)``: its attributes).
_REGISTERED: dict[type, tuple[Any, Any]] = {}

Node = tuple[list[tuple[str, Any]], Callable[[list[Any]], Any]]


def register_structure(
    cls: type,
    flatten: Callable[[Any], Mapping[str, Any]] | None = None,
    unflatten: Callable[[dict[str, Any]], Any] | None = None,
) -> None:
    """Let safesvd see the tensors inside instances of ``cls`` (in batches and model outputs).

    Without ``flatten``/``unflatten`` the children are the instance's attributes (dataclass fields,
    ``__slots__`` or ``__dict__``), and an instance is rebuilt as a shallow copy with new children.
    With them, ``flatten(obj)`` returns the children by name and ``unflatten(children)`` builds the
    object back from that dict. Dataclasses, dicts, lists, tuples and namedtuples need no
    registration. Registering a class again with other functions is a :class:`ConfigError`.
    """
    if not isinstance(cls, type) or issubclass(cls, Tensor):
        raise ConfigError(f"register_structure takes a class other than Tensor, got {cls!r}")
    if (flatten is None) != (unflatten is None):
        raise ConfigError("register_structure takes both flatten= and unflatten=, or neither")
    known = _REGISTERED.setdefault(cls, (flatten, unflatten))
    if known != (flatten, unflatten):
        raise ConfigError(f"{cls.__qualname__} is already registered with other flatten/unflatten functions")


def structure_leaves(value: Any, root: str = "") -> list[tuple[str, Any]]:
    """Every leaf of ``value`` with its place (``surf_vars.2t``, ``[1]``, ``graph.edges``), in order."""
    node = _node(value, root)
    if node is None:
        return [(root, value)]
    children, _ = node
    return [pair for name, child in children for pair in structure_leaves(child, _join(root, name))]


def tensor_leaves(value: Any, root: str = "") -> list[tuple[str, Tensor]]:
    """The tensor leaves of ``value`` with their places, in order."""
    return [(place, leaf) for place, leaf in structure_leaves(value, root) if isinstance(leaf, Tensor)]


def map_structure(fn: Callable[[str, Any], Any], value: Any, root: str = "") -> Any:
    """``value`` rebuilt with ``fn(place, leaf)`` for each leaf; a node whose children all come back
    unchanged (``is``) is returned as it is."""
    node = _node(value, root)
    if node is None:
        return fn(root, value)
    children, rebuild = node
    new = [map_structure(fn, child, _join(root, name)) for name, child in children]
    return value if all(a is b for a, (_, b) in zip(new, children)) else rebuild(new)


def moved(value: Any, device: Any) -> Any:
    """``value`` with its tensors (and leaves that have a ``to`` method) on ``device``."""
    return map_structure(lambda _, leaf: leaf.to(device) if _movable(leaf) else leaf, value)


def describe(value: Any) -> str:
    """The shapes of the tensors in ``value`` and the types of its other leaves, for messages."""
    if isinstance(value, Tensor):
        return str(tuple(value.shape))
    shown = [
        f"{place or 'value'}: {tuple(leaf.shape) if isinstance(leaf, Tensor) else type(leaf).__name__}"
        for place, leaf in structure_leaves(value)
    ]
    return f"{type(value).__name__}({', '.join(shown)})"


def unreachable(value: Any, what: str = "the value") -> str:
    """The message for ``value`` holding no tensor the walker can reach."""
    kind = type(value).__qualname__
    return (
        f"{what} is a {kind} holding no tensor safesvd can reach: register its class with "
        f"safesvd_core.register_structure({kind}) (its attributes), or with flatten= and unflatten= "
        "functions that give and take its children by name"
    )


def _join(root: str, name: str) -> str:
    if name.startswith("["):
        return f"{root}{name}"
    return f"{root}.{name}" if root else name


def _movable(leaf: Any) -> bool:
    return isinstance(leaf, Tensor) or (
        not isinstance(leaf, (type, nn.Module)) and callable(getattr(leaf, "to", None))
    )


def _node(value: Any, place: str) -> Node | None:
    """The children of ``value`` (name, child) and how to rebuild it from new ones; None for a leaf."""
    if isinstance(value, (Tensor, str, bytes, int, float, type)) or value is None:
        return None
    kind = type(value)
    if kind in _REGISTERED:
        flatten, unflatten = _REGISTERED[kind]
        if flatten is None:
            flatten, unflatten = _attributes, _rebuilder(kind)
        named = dict(flatten(value))
        keys = list(named)
        return [(str(key), named[key]) for key in keys], lambda new: unflatten(dict(zip(keys, new)))
    if not pytree.tree_is_leaf(value):
        return _pytree_node(value)
    if isinstance(value, Mapping):
        keys = list(value)
        return [(str(key), value[key]) for key in keys], lambda new: dict(zip(keys, new))
    if dataclasses.is_dataclass(value):
        return _attribute_node(value, [field.name for field in dataclasses.fields(value)])
    if isinstance(value, nn.Module) or _movable(value):
        return None
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and _holds_tensors(attributes.values()):
        return _attribute_node(value, list(attributes))
    if _holds_tensors(getattr(value, name, None) for name in _slots(kind)):
        raise ConfigError(
            f"a {kind.__qualname__} (at {place or 'the top'}) keeps tensors in __slots__, which safesvd "
            f"cannot reach: register the class with safesvd_core.register_structure({kind.__qualname__}) "
            "(or with flatten= and unflatten= functions)"
        )
    return None


def _pytree_node(value: Any) -> Node:
    try:
        pairs, spec = pytree.tree_flatten_with_path(value, is_leaf=lambda x: x is not value)
        names = [_key_name(path[0]) for path, _ in pairs]
        children = [child for _, child in pairs]
    except ValueError:  # a node registered with torch's pytree without key paths
        children, spec = pytree.tree_flatten(value, is_leaf=lambda x: x is not value)
        names = [f"[{i}]" for i in range(len(children))]
    return list(zip(names, children)), lambda new: pytree.tree_unflatten(new, spec)


def _key_name(key: Any) -> str:
    if isinstance(key, pytree.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, pytree.MappingKey):
        return str(key.key)
    if isinstance(key, pytree.GetAttrKey):
        return key.name
    return str(key)


def _attribute_node(value: Any, names: list[str]) -> Node:
    def rebuild(new: list[Any]) -> Any:
        copied = copy.copy(value)
        for name, child in zip(names, new):
            object.__setattr__(copied, name, child)
        return copied

    return [(name, getattr(value, name)) for name in names], rebuild


def _attributes(value: Any) -> dict[str, Any]:
    """The default flatten of a registered class: fields, slots or ``__dict__``."""
    if dataclasses.is_dataclass(value):
        names = [field.name for field in dataclasses.fields(value)]
    else:
        names = [*_slots(type(value)), *getattr(value, "__dict__", {})]
    return {name: getattr(value, name) for name in names if hasattr(value, name)}


def _rebuilder(cls: type) -> Callable[[dict[str, Any]], Any]:
    def rebuild(children: dict[str, Any]) -> Any:
        instance = cls.__new__(cls)
        for name, child in children.items():
            object.__setattr__(instance, name, child)
        return instance

    return rebuild


def _slots(kind: type) -> list[str]:
    names: list[str] = []
    for cls in kind.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += (
            [slots] if isinstance(slots, str) else [s for s in slots if s not in ("__dict__", "__weakref__")]
        )
    return names


def _holds_tensors(values: Any) -> bool:
    return any(isinstance(value, Tensor) or bool(tensor_leaves(value)) for value in values)
