"""Files kept between an upload's preview and its import: bound to a session, one per session,
size-limited, gone after an hour or once discarded."""

from __future__ import annotations

import io

import pytest

from retention_console.staging import StagedFiles, StagedFileTooLarge


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_found_only_by_the_session_that_sent_it() -> None:
    files = StagedFiles(max_bytes=100)
    kept = files.stage("session-a", "export.csv", io.BytesIO(b"a,b\n1,2\n"))
    assert kept.path.read_bytes() == b"a,b\n1,2\n" and kept.size == 8
    assert files.find("session-a", kept.id) is kept
    assert files.find("session-b", kept.id) is None
    assert files.find("session-a", "guessed") is None
    files.close()
    assert not kept.path.exists()


def test_a_session_keeps_one_file_and_a_discarded_one_is_deleted() -> None:
    files = StagedFiles(max_bytes=100)
    first = files.stage("s", "one.csv", io.BytesIO(b"1"))
    second = files.stage("s", "two.csv", io.BytesIO(b"2"))
    assert files.find("s", first.id) is None and not first.path.exists()
    files.discard(second)
    assert files.find("s", second.id) is None and not second.path.parent.exists()
    files.close()


def test_a_file_over_the_limit_is_not_kept() -> None:
    files = StagedFiles(max_bytes=10)
    with pytest.raises(StagedFileTooLarge):
        files.stage("s", "big.csv", io.BytesIO(b"x" * 11))
    assert files._files == {} and not any(files._directory().iterdir())
    files.close()


def test_files_are_deleted_an_hour_after_they_were_sent() -> None:
    clock = Clock()
    files = StagedFiles(max_bytes=100, clock=clock)
    kept = files.stage("s", "export.csv", io.BytesIO(b"1"))
    clock.now += 3599
    assert files.find("s", kept.id) is kept
    clock.now += 1
    files.sweep()
    assert files.find("s", kept.id) is None and not kept.path.exists()
    files.close()
