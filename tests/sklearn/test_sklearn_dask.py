"""Many fits on a cluster: a grid search over chainrule estimators under joblib's Dask backend,
on a Dask LocalCluster of worker processes (the documented way to use several machines)."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
distributed = pytest.importorskip("dask.distributed", reason="the Dask backend is the optional extra 'dask'")
import joblib  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from chainrule.sklearn import MLPClassifier  # noqa: E402


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::ResourceWarning",
    "ignore::UserWarning",
    "ignore::sklearn.exceptions.ConvergenceWarning",
)
def test_grid_search_runs_on_a_dask_cluster_and_matches_a_local_one():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:600])
    y = y[:600]
    grid = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}
    estimator = MLPClassifier(max_iter=30, random_state=0)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
        joblib.parallel_backend("dask"),
    ):
        on_cluster = GridSearchCV(estimator, grid, cv=3, n_jobs=-1).fit(X, y)
        workers = set(client.scheduler_info()["workers"])
    local = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert len(workers) == 2
    np.testing.assert_array_equal(on_cluster.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
    assert (
        on_cluster.best_params_ == local.best_params_ and on_cluster.best_score_ > 0.65
    )  # 30 epochs on 400 rows per fold
