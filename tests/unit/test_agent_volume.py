"""Volume operations on a real temp folder: flips, the managed .airflowignore block, safe installs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dagsync.agent.volume import IGNORE_BEGIN, IGNORE_END, Volume, VolumeError, render_airflowignore, tree_digest
from dagsync.core import archive
from dagsync.core.archive import build_archive


def make_archive(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    out = tmp_path / "a.tar.gz"
    out.write_bytes(build_archive(src).data)
    return out


@pytest.fixture
def volume(dags: Path) -> Volume:
    vol = Volume(dags)
    vol.ensure_layout()
    return vol


def test_install_then_flip_makes_a_relative_link(volume: Volume, tmp_path: Path) -> None:
    volume.install("alpha", "1-abc", make_archive(tmp_path, {"dag.py": "x = 1\n"}))
    volume.flip("alpha", "1-abc")
    link = volume.root / "alpha"
    assert os.readlink(link) == ".dagsync/store/alpha/1-abc"
    assert (link / "dag.py").read_text() == "x = 1\n"
    assert volume.linked_tree("alpha") == "1-abc"
    assert volume.temp_links() == [] and list(volume.staging.iterdir()) == []


def test_flip_replaces_the_link_with_one_rename(volume: Volume, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    archive_path = make_archive(tmp_path, {"dag.py": "v = 1\n"})
    volume.install("alpha", "1-a", archive_path)
    volume.install("alpha", "2-b", archive_path)
    volume.flip("alpha", "1-a")
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        calls.append((os.path.basename(src), os.path.basename(dst)))
        assert os.readlink(src) == ".dagsync/store/alpha/2-b"  # the new link is complete before the rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    volume.flip("alpha", "2-b")
    assert calls == [(".dagsync-link-alpha", "alpha")]
    assert volume.linked_tree("alpha") == "2-b"


def test_flip_refuses_to_replace_a_real_folder(volume: Volume, tmp_path: Path) -> None:
    volume.install("alpha", "1-a", make_archive(tmp_path, {"dag.py": ""}))
    (volume.root / "alpha").mkdir()
    with pytest.raises(VolumeError, match="not a symlink"):
        volume.flip("alpha", "1-a")


def test_full_disk_during_extract_leaves_staging_clean_and_old_tree_live(
    volume: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_path = make_archive(tmp_path, {"a.py": "1", "b.py": "2", "c.py": "3"})
    volume.install("alpha", "1-a", archive_path)
    volume.flip("alpha", "1-a")
    real_fsync, calls = os.fsync, []

    def full_disk(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # after the first file of the second tree is written
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        volume.install("alpha", "2-b", archive_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(volume.staging.iterdir()) == []
    assert not volume.tree_path("alpha", "2-b").exists()
    assert volume.linked_tree("alpha") == "1-a" and (volume.root / "alpha" / "a.py").read_text() == "1"


def test_unsafe_archive_is_refused_and_staging_clean(volume: Volume, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball at all")
    with pytest.raises(archive.UnsafeArchive):
        volume.install("alpha", "1-a", bad)
    assert list(volume.staging.iterdir()) == [] and volume.list_trees().get("alpha") in (None, [])


def test_airflowignore_block_is_added_and_user_lines_kept(volume: Volume) -> None:
    path = volume.root / ".airflowignore"
    path.write_text("scratch/\n# my note\n")
    assert volume.ensure_airflowignore()
    text = path.read_text()
    assert text.startswith("scratch/\n# my note\n")
    assert "\n.dagsync\n" in text and IGNORE_BEGIN in text and IGNORE_END in text
    assert not volume.ensure_airflowignore()  # idempotent


def test_airflowignore_block_is_repaired_in_place() -> None:
    broken = f"user1\n{IGNORE_BEGIN}\nsomething-edited\n{IGNORE_END}\nuser2\n"
    fixed = render_airflowignore(broken)
    assert fixed.splitlines() == ["user1", "user2", "", IGNORE_BEGIN, ".dagsync", ".dagsync-*", IGNORE_END]
    assert render_airflowignore(fixed) == fixed


def test_tree_digest_changes_with_any_byte(volume: Volume, tmp_path: Path) -> None:
    tree = volume.install("alpha", "1-a", make_archive(tmp_path, {"pkg/dag.py": "abc"}))
    before = tree_digest(tree)
    (tree / "pkg" / "dag.py").write_text("abd")
    assert tree_digest(tree) != before


def test_a_second_install_of_the_same_tree_keeps_the_first_in_place(volume: Volume, tmp_path: Path) -> None:
    # Given a tree installed (by the agent, say) that a running task may be reading
    built = make_archive(tmp_path, {"dag.py": "x = 1\n"})
    first = volume.install("alpha", "1-abc", built)
    inode = first.stat().st_ino
    # When an Airflow worker's bundle installs the same tree again
    second = volume.install("alpha", "1-abc", built)
    # Then the tree in the store is the very same folder, and staging is clean
    assert second == first and second.stat().st_ino == inode
    assert list(volume.staging.iterdir()) == []


def test_an_install_over_a_damaged_copy_replaces_it(volume: Volume, tmp_path: Path) -> None:
    built = make_archive(tmp_path, {"dag.py": "x = 1\n"})
    path = volume.install("alpha", "1-abc", built)
    (path / "dag.py").write_text("tampered\n")
    volume.install("alpha", "1-abc", built)
    assert (volume.tree_path("alpha", "1-abc") / "dag.py").read_text() == "x = 1\n"
    assert list(volume.staging.iterdir()) == []
