"""The plugin kinds (the abstract interfaces), their hook specifications, registries, configs and
validators."""
