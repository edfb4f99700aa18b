"""Every file telegen writes is written whole or not at all, durably, with
the mode a plain open() would give it."""
from __future__ import annotations

import os
import stat

import pytest

from telegen.atomic import AtomicFile, commit_all, write_atomic


def test_a_file_replaces_the_old_one_whole_with_the_usual_mode(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    previous = os.umask(0o027)
    try:
        write_atomic(target, b"new")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0666 less the umask, not a temporary's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "t.pb"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.write(b"half")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["t.pb"]


def test_files_that_belong_together_are_all_renamed_after_all_are_written(tmp_path):
    files = [AtomicFile(tmp_path / name) for name in ("a.pb", "b.pb")]
    for f in files:
        f.write(f.path.name.encode())
    assert not (tmp_path / "a.pb").exists()
    assert commit_all(files) == [tmp_path / "a.pb", tmp_path / "b.pb"]
    assert (tmp_path / "b.pb").read_bytes() == b"b.pb" and len(list(tmp_path.iterdir())) == 2


def test_a_named_temporary_is_kept_visible_until_commit(tmp_path):
    # The sink's recording grows as recorded-<signal>.pb.part, readable if the sink is killed.
    part = tmp_path / "r.pb.part"
    out = AtomicFile(tmp_path / "r.pb", part)
    out.write(b"x")
    out.file.flush()
    assert part.read_bytes() == b"x"
    out.commit()
    assert (tmp_path / "r.pb").read_bytes() == b"x" and not part.exists()
