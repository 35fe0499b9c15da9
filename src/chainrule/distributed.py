"""`chainrule.distributed`, the documented path of `chainrule.training.distributed`."""

from chainrule.training.distributed import (
    MpiDataParallel,
    RankFailedError,
    SingleProcess,
    data_parallel,
    shard_rows,
)

__all__ = [
    "MpiDataParallel",
    "RankFailedError",
    "SingleProcess",
    "data_parallel",
    "shard_rows",
]
