"""Progress output as callbacks: nothing, a bar, or one line per epoch."""

import sys

from chainrule.training.progress import EpochLines, ProgressBar, progress_callbacks


def test_verbose_picks_the_progress_callback():
    assert progress_callbacks(0, 5) == []
    assert isinstance(progress_callbacks(1, 5)[0], ProgressBar)
    assert isinstance(progress_callbacks(2, 5)[0], EpochLines)


def test_epoch_lines_show_loss_and_metrics_but_not_the_penalty(capsys):
    EpochLines(10).on_epoch_end(2, {"loss": 0.5, "regularization_loss": 0.1, "accuracy": 0.75})
    assert capsys.readouterr().out == "epoch 3/10  loss 0.5000  accuracy 0.7500\n"


def test_a_distributed_fit_prints_about_twenty_lines_where_no_bar_can_show(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # as under mpiexec
    (lines,) = progress_callbacks(1, 100, distributed=True)
    for epoch in range(100):
        lines.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 20 and printed[0].startswith("epoch 5/100") and printed[-1].startswith("epoch 100/100")
    assert isinstance(progress_callbacks(1, 100)[0], ProgressBar)  # one process: the bar, as before
