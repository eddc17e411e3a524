"""Entry point of the built-in model adapters."""

from __future__ import annotations

from safesvd_core._hookspecs import hookimpl

from .generic import GenericAdapter


@hookimpl
def safesvd_model_adapters():
    return [GenericAdapter]
