"""Recipes: declarative TOML files, validated into typed objects before any compute."""

from harness.recipe.loader import LoadedRecipe, builtin_recipes, find_recipe, load_recipe
from harness.recipe.schema import Recipe

__all__ = ["LoadedRecipe", "Recipe", "builtin_recipes", "find_recipe", "load_recipe"]
