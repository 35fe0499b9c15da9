"""Progress output as callbacks: nothing, a bar, or one line per epoch."""

from chainrule.training.progress import EpochLines, ProgressBar, progress_callbacks


def test_verbose_picks_the_progress_callback():
    assert progress_callbacks(0, 5) == []
    assert isinstance(progress_callbacks(1, 5)[0], ProgressBar)
    assert isinstance(progress_callbacks(2, 5)[0], EpochLines)


def test_epoch_lines_show_loss_and_metrics_but_not_the_penalty(capsys):
    EpochLines(10).on_epoch_end(2, {"loss": 0.5, "regularization_loss": 0.1, "accuracy": 0.75})
    assert capsys.readouterr().out == "epoch 3/10  loss 0.5000  accuracy 0.7500\n"
