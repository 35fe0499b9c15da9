"""Many fits on a cluster: a grid search over chainrule estimators on a Dask LocalCluster of
worker processes (the documented way to use several machines), through `on_cluster`, which
survives the death of workers and names a fit that kills them."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
distributed = pytest.importorskip("dask.distributed", reason="the Dask backend is the optional extra 'dask'")
import dask  # noqa: E402
from dying_fits import DyingMLPClassifier  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from chainrule.errors import WorkerDiedError  # noqa: E402
from chainrule.sklearn import MLPClassifier  # noqa: E402
from chainrule.sklearn.cluster import on_cluster  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::ResourceWarning",
    "ignore::UserWarning",
    "ignore::sklearn.exceptions.ConvergenceWarning",
)

GRID = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:600]), y[:600]


@pytest.fixture(scope="module")
def local_search(digits):
    return GridSearchCV(MLPClassifier(max_iter=30, random_state=0), GRID, cv=3).fit(*digits)


def two_workers():
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)


def assert_same_search(on_cluster_search, local_search):
    np.testing.assert_array_equal(
        on_cluster_search.cv_results_["mean_test_score"], local_search.cv_results_["mean_test_score"]
    )
    assert on_cluster_search.best_params_ == local_search.best_params_
    assert on_cluster_search.best_score_ > 0.65  # 30 epochs on 400 rows per fold


def test_a_grid_search_on_the_cluster_equals_a_local_one(digits, local_search):
    with (
        two_workers() as cluster,
        distributed.Client(cluster) as client,
        on_cluster(),
        distributed.get_task_stream(client) as tasks,
    ):
        search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0), GRID, cv=3).fit(*digits)
    fits = [task for task in tasks.data if task["key"].startswith("chainrule-fit-")]
    assert len(fits) == 12 and len({task["worker"] for task in fits}) == 2  # 4 candidates x 3 folds, on both workers
    assert_same_search(search, local_search)


def test_a_search_finishes_when_workers_die_mid_way(digits, local_search, tmp_path, monkeypatch):
    """Both first fits end their workers (the data joblib's own Dask backend scatters would be lost
    with them); the scheduler runs them again on the restarted workers."""
    monkeypatch.setenv("CHAINRULE_TEST_DEATHS", str(tmp_path))
    monkeypatch.setenv("CHAINRULE_TEST_DYING", "first-two")
    with two_workers() as cluster, distributed.Client(cluster), on_cluster():
        search = GridSearchCV(DyingMLPClassifier(max_iter=30, random_state=0), GRID, cv=3).fit(*digits)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["death-0", "death-1"]
    assert_same_search(search, local_search)


def test_a_fit_that_ends_every_worker_running_it_stops_the_search_with_its_name(digits, monkeypatch):
    """Every fit of this grid ends its worker (Dask also counts a death against the fits queued on
    that worker, so with a mixed grid a healthy fit could be the one named)."""
    monkeypatch.setenv("CHAINRULE_TEST_DYING", "alpha-0.01")
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        two_workers() as cluster,
        distributed.Client(cluster),
        on_cluster(),
        pytest.raises(
            WorkerDiedError, match=r"gave up on the fit with parameters \{'alpha': 0\.01, .*each of the 2 workers"
        ),
    ):
        GridSearchCV(DyingMLPClassifier(max_iter=30, random_state=0), {**GRID, "alpha": [0.01]}, cv=3).fit(*digits)


def test_without_a_client_on_cluster_says_so_before_any_fit():
    with pytest.raises(ValueError, match=r"on_cluster: no Dask client to run the fits on; start one first"):
        on_cluster().__enter__()
