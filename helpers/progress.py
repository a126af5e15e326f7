"""Progress bars that leave their final state behind, in a live notebook and in its saved copy.

``tqdm.auto`` draws an ipywidgets bar in a notebook. The saved notebook keeps the text it had when
it was first shown (``training:   0%|          | 0/9``), so a notebook read outside JupyterLab, or
after its run, shows every bar frozen at zero. :func:`progress_bar` gives the same ``tqdm.auto``
bar, shown under a display id and shown again when it closes: the saved output then reads as the
bar ended (``features: 100%|##########| 62/62 [...]``). In a terminal it is tqdm's text bar.

>>> sum(progress_bar(range(4), desc="clips", unit="clip", disable=True))  # iterate over it as over range(4)
6
"""
from __future__ import annotations

from typing import Iterable

from tqdm.auto import tqdm as _auto_tqdm

try:
    from tqdm.notebook import tqdm_notebook as _notebook_tqdm
except ImportError:  # no ipywidgets: tqdm.auto is the text bar
    _notebook_tqdm = None


if _notebook_tqdm is not None and issubclass(_auto_tqdm, _notebook_tqdm):
    class _Bar(_auto_tqdm):
        """tqdm's notebook bar, displayed under a display id and displayed again (final) on close.

        The bundle is written by hand (the widget's view and the bar's text): ipywidgets 7 (Colab)
        displays a widget through ``_ipython_display_``, which drops the display id, so
        ``display(widget, display_id=True)`` could not be updated there.
        """

        def __init__(self, *args, **kwargs):
            kwargs["display"] = False
            super().__init__(*args, **kwargs)
            self._handle = None
            if not self.disable:
                from IPython.display import display

                self._handle = display(self._bundle(), raw=True, display_id=True)
                self.displayed = True

        def _bundle(self) -> dict:
            data = {"text/plain": str(self)}
            model_id = getattr(self.container, "model_id", None)
            if model_id:
                data["application/vnd.jupyter.widget-view+json"] = {
                    "version_major": 2, "version_minor": 0, "model_id": model_id}
            return data

        def close(self):
            super().close()
            if self._handle is not None:
                self._handle.update(self._bundle(), raw=True)  # the saved text/plain: the bar as it ended
                self._handle = None
else:
    _Bar = _auto_tqdm


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", disable: bool = False, **kwargs) -> _auto_tqdm:
    """A ``tqdm.auto`` bar over *iterable* (or of *total* steps) whose saved output ends as the bar did.

    Use it as tqdm: iterate over it, or ``update`` it and ``close`` it (a ``with`` block closes
    it); a loop over it closes it at its end. Keyword arguments go to tqdm.
    """
    return _Bar(iterable, total=total, desc=desc, unit=unit, disable=disable, **kwargs)
