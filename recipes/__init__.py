"""The built-in recipes, installed as the package `hrformer_core.recipes` (see pyproject.toml).

This file makes the folder a regular package, so editable installs import it like a wheel install does and
`importlib.resources` finds the YAML files next to it.
"""
