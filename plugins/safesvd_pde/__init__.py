"""safesvd built-in plugin: physics losses, finite differences and PDE families.

Modules: :mod:`.finite_difference` (the FD operators), :mod:`.sobolev`, :mod:`.flow`,
:mod:`.conservation` (losses), :mod:`.families`, :mod:`.plugin` (the ``@hookimpl`` entry point).
"""
