"""Pictures of what a model does: where it looks, what it sees, what it guesses, and how its training went.

Every function returns a matplotlib `Figure` or writes a file. Nothing opens a window: figures are made with
`matplotlib.figure.Figure` and rendered by Agg, so pyplot's global state is never touched. Which pictures a task's run
gets is the task's to say (`ram.tasks`); this package only draws. One module per subject:

- `classify`: a classifier's glimpses, from one `Trace` of a batch (tracks, saccades, glimpse panels, the GIF);
- `catch`: the games a Catch agent played, from their `ram.envs.Recording`;
- `training`: a run's curves, a Catch run's learning curve, and the `fit` hooks that draw them;
- `common`: the colours, frames and fonts they share, and writing a figure or a GIF atomically.
"""

from ..sensor import boxes
from .catch import CATCH_FOOTER, CATCH_HEADER, catch_frames, catch_still, render_catch
from .classify import (
    GIF_HEADER,
    Trace,
    animate,
    frames,
    glimpse_panels,
    pick,
    render,
    saccades,
    trace,
    tracks,
    windows,
)
from .common import DPI, ORDER, PATH, RIGHT, UNKNOWN, WRONG, save, to_array
from .training import (
    CURVES_EVERY_S,
    SCALARS,
    compare_learning_curves,
    curves,
    learning_curve,
    read_metrics,
    run_pictures_hook,
    tensorboard_hook,
)

__all__ = [
    "CATCH_FOOTER", "CATCH_HEADER", "CURVES_EVERY_S", "DPI", "GIF_HEADER", "ORDER", "PATH", "RIGHT", "SCALARS",
    "UNKNOWN", "WRONG", "Trace", "animate", "boxes", "catch_frames", "catch_still", "compare_learning_curves",
    "curves", "frames", "glimpse_panels", "learning_curve", "pick", "read_metrics", "render", "render_catch",
    "run_pictures_hook", "saccades", "save", "tensorboard_hook", "to_array", "trace", "tracks", "windows",
]
