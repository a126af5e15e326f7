"""Tables as a notebook shows them: every number formatted once, integers as integers.

pandas turns a column of integers into floats as soon as one operation (a mean, a median, a
transpose of mixed rows) passes through float64, and then prints ``60.0`` or ``support 20.0``.
:func:`readable` rounds the floats and gives whole-number columns (and a whole-number index) back
their integer type, so what a student reads is the number as it was counted.

>>> import pandas as pd
>>> readable(pd.DataFrame({"fps": [1.0, 2.0], "accuracy": [0.75, 0.8333]}))
   fps  accuracy
0    1     0.750
1    2     0.833
"""
from __future__ import annotations


def readable(table, digits: int = 3):
    """*table* (a DataFrame or Series) with floats rounded to *digits* and every float column, and a
    float index, whose values are all whole numbers turned into integers. A new table; the input is
    left as it was."""
    import numpy as np
    import pandas as pd

    def whole(values) -> bool:
        values = np.asarray(values, dtype=float)
        return bool(len(values)) and bool(np.all(np.isfinite(values))) and bool(np.all(values == np.round(values)))

    out = table.copy()
    if isinstance(out, pd.Series):
        if pd.api.types.is_float_dtype(out):
            out = out.astype(np.int64) if whole(out) else out.round(digits)
    else:
        for column in out.columns:
            if pd.api.types.is_float_dtype(out[column]):
                out[column] = out[column].astype(np.int64) if whole(out[column]) else out[column].round(digits)
    if pd.api.types.is_float_dtype(out.index) and whole(out.index):
        out.index = out.index.astype(np.int64)
    return out
