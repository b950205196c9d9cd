"""The DAG folder on disk: store trees, relative symlinks, staging, the managed .airflowignore block.

Every operation here is one small, atomic step; the executor strings them together from a Plan.

    <dags_dir>/<project> -> .dagsync/store/<project>/<version>-<sha12>   (relative symlink)
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from dagsync.core import archive
from dagsync.core.archive import fsync_dir, write_atomic

from .state import FileEntry

META_DIR = ".dagsync"
TMP_LINK_PREFIX = ".dagsync-link-"
IGNORE_FILE = ".airflowignore"
IGNORE_BEGIN = "# BEGIN dagsync (managed block: dagsync-agent rewrites the lines up to END)"
IGNORE_END = "# END dagsync"
# `.dagsync` hides the store from Airflow's parser (without it DagBag sees every tree twice and fails);
# `.dagsync-*` hides the temporary link that exists for an instant during a flip.
IGNORE_LINES = (".dagsync", ".dagsync-*")
# Names in the DAG folder that belong to the agent and are never reported as foreign.
OWN_NAMES = frozenset({META_DIR, IGNORE_FILE})
# What Python (Airflow's parser) writes inside a tree it imports from; not part of the tree.
PYCACHE = "__pycache__"

TMP_PREFIX = ".tmp-"  # files and links being written next to where they will be renamed


class VolumeError(RuntimeError):
    """A volume operation could not be done safely; nothing was changed."""


class Volume:
    def __init__(self, dags_dir: Path) -> None:
        self.root = dags_dir
        self.meta = dags_dir / META_DIR
        self.store = self.meta / "store"
        self.staging = self.meta / "staging"
        self.state_path = self.meta / "state.json"

    def ensure_layout(self) -> None:
        for path in (self.root, self.meta, self.store, self.staging):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)

    # -- links -------------------------------------------------------------------------------

    def link_path(self, project: str) -> Path:
        return self.root / project

    @staticmethod
    def link_target(project: str, tree: str) -> str:
        return f"{META_DIR}/store/{project}/{tree}"

    def linked_tree(self, project: str) -> str | None:
        """The tree this project's symlink points at, if it is one of ours; else None."""
        try:
            target = os.readlink(os.path.join(self.root, project))  # no pathlib: once per project per cycle
        except OSError:
            return None
        prefix = f"{META_DIR}/store/{project}/"
        tree = target.removeprefix(prefix)
        if tree == target or not tree or "/" in tree or tree in (".", ".."):
            return None
        return tree

    def flip(self, project: str, tree: str) -> None:
        """Point the project's link at a tree with one rename: readers see the old tree or the new one."""
        link = self.link_path(project)
        if os.path.lexists(link) and not link.is_symlink():
            raise VolumeError(f"{link} is not a symlink; dagsync will not replace it")
        if not self.tree_path(project, tree).is_dir():
            raise VolumeError(f"tree {project}/{tree} is not in the store")
        tmp = self.root / f"{TMP_LINK_PREFIX}{project}"
        if os.path.lexists(tmp):
            tmp.unlink()
        os.symlink(self.link_target(project, tree), tmp)
        os.replace(tmp, link)
        fsync_dir(self.root)

    def unlink(self, project: str) -> None:
        link = self.link_path(project)
        if link.is_symlink():
            link.unlink()
            fsync_dir(self.root)

    def temp_links(self) -> list[Path]:
        return sorted(p for p in self.root.glob(f"{TMP_LINK_PREFIX}*") if p.is_symlink() or p.is_file())

    def entries(self) -> list[str]:
        """Names in the DAG folder other than the agent's own files."""
        return sorted(
            e.name for e in os.scandir(self.root) if e.name not in OWN_NAMES and not e.name.startswith(TMP_LINK_PREFIX)
        )

    # -- store trees --------------------------------------------------------------------------

    def tree_path(self, project: str, tree: str) -> Path:
        return self.store / project / tree

    def list_trees(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not self.store.is_dir():
            return out
        # os.scandir, not pathlib: runs on every cycle over every project (docs/benchmarks.md).
        for pdir in sorted(os.scandir(self.store), key=lambda e: e.name):
            if pdir.is_dir() and not pdir.name.startswith("."):
                out[pdir.name] = self.trees_of(pdir.name)
        return out

    def trees_of(self, project: str) -> list[str]:
        """The trees in one project's store folder (none when it has no folder)."""
        try:
            with os.scandir(os.path.join(self.store, project)) as trees:
                return sorted(t.name for t in trees if t.is_dir() and not t.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def install(self, project: str, tree: str, archive_path: Path) -> Path:
        """Safe-extract into staging, then rename into the store. On any error staging is left clean.

        The agent and an Airflow worker's bundle may install the same tree at once: whoever renames second finds
        the tree there, and keeps it when its content is the same (a running task may be reading it); a copy
        whose content differs is damaged and is replaced."""
        tmp = self.staging / f"{project}--{tree}--{uuid.uuid4().hex[:8]}"
        try:
            with archive_path.open("rb") as fh:
                archive.extract(fh, tmp)
            final = self.tree_path(project, tree)
            final.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)  # atomic; refused when a non-empty tree is already there
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                if tree_digest(final) == tree_digest(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return final
                self.discard(final)
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(final.parent)
        return final

    def touch_tree(self, project: str, tree: str, when: float) -> None:
        """Give every file of a tree the mtime `when`. Airflow re-parses a known file early only when its mtime is
        newer than its last parse, and a tree extracted earlier (a rollback) carries old mtimes."""
        root = os.fspath(self.tree_path(project, tree))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != PYCACHE]
            for name in filenames:
                os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)

    def missing_trees(self, trees: Mapping[str, str]) -> list[str]:
        """The projects of `trees` (project -> tree) whose tree is not in the store, sorted."""
        store = os.fspath(self.store)  # strings, not Paths: once per project of a release
        return sorted(p for p, t in trees.items() if not os.path.isdir(f"{store}/{p}/{t}"))

    def remove_tree(self, project: str, tree: str) -> None:
        path = self.tree_path(project, tree)
        if path.exists():
            self.discard(path)

    def discard(self, path: Path) -> None:
        """Rename out of the store first (atomic), then delete at leisure."""
        trash = self.staging / f"trash--{path.parent.name}--{path.name}--{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def clear_staging(self) -> int:
        count = 0
        if self.staging.is_dir():
            for entry in self.staging.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                count += 1
        return count

    # -- .airflowignore -----------------------------------------------------------------------

    def ensure_airflowignore(self) -> bool:
        """Keep the managed block present and current; user lines stay as they are. True if rewritten."""
        path = self.root / IGNORE_FILE
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        new = render_airflowignore(old)
        if new == old:
            return False
        # The temp name carries the temp-link prefix: hidden from Airflow and removed by start-up recovery.
        write_atomic(path, new.encode("utf-8"), tmp=self.root / f"{TMP_LINK_PREFIX}airflowignore.tmp")
        return True


def render_airflowignore(text: str) -> str:
    """The file with exactly one managed block at the end and every user line kept in order."""
    user: list[str] = []
    inside = False
    lines = text.splitlines()
    well_formed = IGNORE_BEGIN in lines and IGNORE_END in lines[lines.index(IGNORE_BEGIN) :] if lines else False
    for line in lines:
        if line == IGNORE_BEGIN:
            inside = well_formed
            continue
        if line == IGNORE_END:
            inside = False
            continue
        if inside or (not well_formed and line in IGNORE_LINES):
            continue
        user.append(line)
    while user and not user[-1].strip():
        user.pop()
    block = [IGNORE_BEGIN, *IGNORE_LINES, IGNORE_END]
    return "\n".join([*user, *([""] if user else []), *block]) + "\n"


def tree_listing(path: Path) -> list[FileEntry]:
    """(relative path, size, mtime_ns) for every file and folder below path, sorted; folders have size -1.

    `__pycache__` folders are left out: Airflow's parser writes bytecode next to the DAG files it imports, and
    that is not drift (archives never carry bytecode: the safe extractor refuses it)."""
    # Plain strings and os.lstat, no pathlib per entry: this runs for every tree on every full reconcile
    # (11,000 entries at 1,000 projects), and pathlib made it 4x slower (docs/benchmarks.md).
    out: list[FileEntry] = []
    root = os.fspath(path)
    for dirpath, dirnames, filenames in os.walk(root):
        prefix = dirpath[len(root) + 1 :] + "/" if dirpath != root else ""
        dirnames[:] = sorted(d for d in dirnames if d != PYCACHE)
        out.extend((prefix + name, -1, 0) for name in dirnames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out.append((prefix + name, st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def tree_digest(path: Path) -> bytes:
    """sha256 over each file's relative path and content sha256: changes with any byte of any file."""
    digest, root = hashlib.sha256(), os.fspath(path)
    for rel, size, _ in tree_listing(path):
        # a string path, not path / rel: no pathlib object per file, as in tree_listing
        file_hash = "dir" if size < 0 else archive.sha256_file(os.path.join(root, rel))
        digest.update(f"{rel}\0{file_hash}\n".encode())
    return digest.digest()
