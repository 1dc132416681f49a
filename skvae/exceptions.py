"""Warnings and errors that skvae raises, for users to catch or filter.

Examples
--------
>>> import warnings
>>> from skvae.exceptions import PosteriorCollapseWarning
>>> warnings.simplefilter("ignore", PosteriorCollapseWarning)
"""

__all__ = ["NonFiniteLossError", "PosteriorCollapseWarning"]


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss or weights (it diverged).

    The estimator is left as it was before the failed call (unfitted after a
    first ``fit``). A lower ``learning_rate``, or scaled data, usually helps.
    """


class PosteriorCollapseWarning(UserWarning):
    """Most latent dimensions of a VAE carry no information about the data.

    Raised by ``VAETransformer.fit`` (once per ``partial_fit`` stream) when
    fewer than half of the dimensions are active.
    """


def _warn(message, category):
    """``warnings.warn`` pointing at the first caller outside skvae.

    The frames of skvae's modules and of scikit-learn's wrappers around fit
    and fit_transform (parameter validation, set_output) are skipped, so the
    warning names the user's line (or the line of a meta-estimator such as a
    ``Pipeline`` that called the method).
    """
    import os
    import sys
    import warnings

    here = os.path.dirname(os.path.abspath(__file__))
    wrappers = (  # scikit-learn's decorators around fit and fit_transform
        os.path.join("sklearn", "base.py"),
        os.path.join("sklearn", "utils", "_set_output.py"),
    )
    frame, level = sys._getframe(1), 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(here + os.sep) or filename.endswith(wrappers)):
            break
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
