"""Helpers of the notebook course "video genre classification with a convolutional recurrent network".

One module per stage of the pipeline (DESIGN.md): ``media``, ``manifest``, ``synth``, ``curate``,
``frames``, ``audio``, ``weights``, ``backbone``, ``features``, ``models``, ``train``, ``evaluate``,
``ood``, ``plots``, ``widgets``, ``runner``, ``pipeline``, ``cli``, ``bench``; ``context`` holds the run
context a notebook's setup cell makes with :func:`start_run`.
"""
from helpers.config import GENRES, get_profile
from helpers.context import RunContext, start_run

__all__ = ["GENRES", "RunContext", "get_profile", "start_run"]
__version__ = "0.1.0"
