"""Long loops show progress: a bar on a terminal, plain lines in a job's log."""

import raynas.progress as progress_mod


def test_without_a_terminal_a_line_comes_at_most_every_period(capsys, monkeypatch):
    ticks = iter([0.0, 4.0, 11.0, 12.0, 25.0])  # the start, then after each of four items
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(ticks))
    assert list(progress_mod.progress(range(4), "reading images")) == [0, 1, 2, 3]
    assert capsys.readouterr().err.splitlines() == ["reading images: 2 of 4 (11 s)", "reading images: 4 of 4 (25 s)"]


def test_an_iterator_without_length_is_counted_without_a_total(capsys, monkeypatch):
    ticks = iter([0.0, 30.0])
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(ticks))
    assert list(progress_mod.progress(iter("a"), "batches")) == ["a"]
    assert capsys.readouterr().err == "batches: 1 (30 s)\n"
