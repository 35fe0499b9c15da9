"""An estimator whose fits end their worker process, as a crash or the kernel's out-of-memory
killer would, for the tests of fits on a cluster. The worker processes import it by name.

`CHAINRULE_TEST_DEATHS` is a folder; `CHAINRULE_TEST_DYING` says which fits die: `first-two`,
the first two fits started anywhere (each claims a file in the folder), or `alpha-0.01`, every
fit with that alpha, each time it runs."""

import os
from pathlib import Path

from chainrule.sklearn import MLPClassifier


def claim_a_death() -> bool:
    """Whether this fit is one of the first two started: it claims the next free death file."""
    for death in range(2):
        try:
            (Path(os.environ["CHAINRULE_TEST_DEATHS"]) / f"death-{death}").touch(exist_ok=False)
        except FileExistsError:
            continue
        return True
    return False


class DyingMLPClassifier(MLPClassifier):
    def fit(self, X, y, **fit_options):
        dying = os.environ["CHAINRULE_TEST_DYING"]
        if (dying == "first-two" and claim_a_death()) or (dying == "alpha-0.01" and self.alpha == 0.01):
            os._exit(1)
        return super().fit(X, y, **fit_options)
