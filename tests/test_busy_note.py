"""The demo says in one line when the machine is busy, so that a slow run is explained."""

from __future__ import annotations

import os

from embedstore.cpu import busy_note


def test_busy_note_names_the_load_and_the_cpus_only_above_the_cpu_count(monkeypatch):
    n = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (n + 6.0, 1.0, 1.0))
    note = busy_note()
    assert note is not None and "\n" not in note
    assert note.startswith("machine busy") and f"{n + 6.0:.1f}" in note and f"{n} logical CPUs" in note
    monkeypatch.setattr(os, "getloadavg", lambda: (float(n), 99.0, 99.0))  # the 1-minute figure decides
    assert busy_note() is None


def test_busy_note_is_silent_where_there_is_no_load_average(monkeypatch):
    def missing():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", missing)
    assert busy_note() is None
