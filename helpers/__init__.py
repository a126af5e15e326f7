"""Helpers of the notebook course "video genre classification with a convolutional recurrent network".

One module per stage of the pipeline (DESIGN.md): ``synth``, ``curate``, ``frames``, ``audio``,
``backbone``, ``features``, ``models``, ``train``, ``evaluate``, ``plots``, ``widgets``,
``runner``, ``pipeline``, ``cli``, ``bench``.
"""
from helpers.config import GENRES, get_profile
from helpers.runner import record_metric

__all__ = ["GENRES", "get_profile", "record_metric"]
__version__ = "0.1.0"
