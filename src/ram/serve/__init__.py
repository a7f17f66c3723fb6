"""The page to play with (`ram serve`): draw a digit for a shipped model and watch its glimpses, or watch the Catch
agent play and play against it through the same glimpse window. Needs the serve extra: `pip install -e ".[serve]"`."""

from .app import create_app

__all__ = ["create_app"]
