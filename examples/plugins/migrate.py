# examples/plugins/migrate.py
"""Version 2 of a recipe's options renamed `strength` to `alpha`: saved version-1 configs still load."""

import sys
from typing import ClassVar

import attrs

from safesvd_core import config_from_dict, config_to_dict
from safesvd_core.plugin import Recipe, hookimpl, plugin_manager, registry


@attrs.frozen(kw_only=True)
class MyRecipe(Recipe):
    name: ClassVar[str] = "my-recipe"
    config_version: ClassVar[int] = 2       # version 1 called `alpha` `strength`
    alpha: float = 0.5

    @classmethod
    def migrate_config(cls, options: dict, version: int) -> dict:
        return {"alpha": options.pop("strength"), **options}

    def compress(self, job):
        return registry("recipe").create("safe-svd", alpha=self.alpha).compress(job)


@hookimpl
def safesvd_recipes():
    return [MyRecipe]


plugin_manager().register(sys.modules[__name__])   # a plugin package declares an entry point instead
saved = {"kind": "recipe", "name": "my-recipe", "version": 1, "options": {"strength": 0.3}}
assert config_from_dict(saved) == MyRecipe(alpha=0.3)
print(config_to_dict(MyRecipe(alpha=0.3)))          # version 2, options {'alpha': 0.3}
