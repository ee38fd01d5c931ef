"""First code run in a learner's sandbox: limits, an unprivileged user, then ipykernel.

The grader copies this file into the sandbox and starts it as
``python -I launch.py -f CONNECTION_FILE``. Limits come from the environment
variable ``COURSE_LIMITS`` (resource names and values); they are set as hard
limits before any of the learner's code exists, so no cell can raise them.
When the sandbox starts as root, the kernel then drops to the unprivileged
``COURSE_UID``: the process cap (RLIMIT_NPROC) only binds a non-root user, and
that user owns nothing of the course. ``COURSE_UID`` 0 is a sandbox without
root, whose user namespace counts its own processes (:func:`counts_own_processes`);
-1 is no sandbox. Last, a seccomp filter (:func:`refuse_syscalls`) refuses what
neither the limits nor the user bound. Only numpy, ipykernel and the standard
library are used: this file sees nothing else.
"""

import ctypes
import json
import os
import re
import resource
import shutil
import sys
import threading
import time

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
CLONE_NEWUSER = 0x10000000
# Per machine: the audit architecture, then the system calls a sandbox refuses.
# memfd_create and shmget hold memory that RLIMIT_AS does not count;
# io_uring_setup opens a large kernel interface that no notebook needs (Docker's
# default profile refuses it too); clone3 hides its flags from a filter (glibc
# falls back to clone on ENOSYS); clone and unshare may not make a user
# namespace, where the learner is root again. setsid would give a process a
# scheduler autogroup of its own, so forty busy ones would take the machine from
# the students graded beside them (red-team pass 8); the key calls reach the
# uid's keyring, which no namespace holds and which outlives the sandbox.
# System V semaphore sets and message queues are kernel memory that no limit
# here counts: 1,500 semget calls took 3 GB of the host's slab (red-team pass 10).
# Sockets other than Unix ones are refused: Internet sockets draw on the
# machine's TCP and UDP memory (tcp_mem, udp_mem), which no network namespace
# divides (100 loopback connections took 378 MB of it, red-team pass 9); vsock
# reaches the hypervisor past the network namespace (pass 10). A notebook needs
# none: the kernel's own sockets are Unix ones. Of netlink, only the route
# family, which an unprivileged user can only read, in the sandbox's own
# network namespace; the watchdog counts what its sockets may queue. Larger
# socket buffers (SO_SNDBUF, SO_RCVBUF and their FORCE forms) are refused, so
# that the watchdog can bound what a sandbox's sockets queue (worker.Watchdog).
SYSCALLS = {
    "x86_64": (0xC000003E, {"memfd_create": 319, "shmget": 29, "io_uring_setup": 425,
                            "setsid": 112, "add_key": 248, "request_key": 249,
                            "keyctl": 250, "clone3": 435, "clone": 56,
                            "unshare": 272, "socket": 41, "setsockopt": 54,
                            "semget": 64, "msgget": 68}),
    "aarch64": (0xC00000B7, {"memfd_create": 279, "shmget": 194, "io_uring_setup": 425,
                             "setsid": 157, "add_key": 217, "request_key": 218,
                             "keyctl": 219, "clone3": 435, "clone": 220,
                             "unshare": 97, "socket": 198, "setsockopt": 208,
                             "semget": 190, "msgget": 186}),
}
AF_UNIX, AF_NETLINK, NETLINK_ROUTE, SOL_SOCKET = 1, 16, 0, 1
BUFFER_OPTIONS = (7, 8, 32, 33)  # SO_SNDBUF, SO_RCVBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE
REFUSED = ("memfd_create", "shmget", "semget", "msgget", "io_uring_setup", "setsid",
           "add_key", "request_key", "keyctl")


def exit_with_parent() -> None:
    """Leave when whoever started us has gone (bwrap does this too, when used).

    Also used by the judge, which runs in a session of its own.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="course-lifeline", daemon=True).start()


def refuse_syscalls(machine: str) -> None:
    """Install a seccomp filter (classic BPF) that refuses what SYSCALLS names.

    Raises OSError for a machine SYSCALLS does not know or a kernel that refuses
    the filter: a sandbox without it must not start.
    """
    if machine not in SYSCALLS:
        raise OSError(f"no seccomp filter is written for a {machine} machine "
                      f"(only for {', '.join(SYSCALLS)})")
    arch, number = SYSCALLS[machine]
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys, eafnosupport = 0x50000 | 1, 0x50000 | 38, 0x50000 | 97
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF op codes

    def op(code, k, true=0, false=0):  # a jump skips `true` or `false` ops
        return (code, true, false, k)

    # seccomp_data: nr at byte 0, arch at 4, the low half of argument i at 16 + 8i.
    prog = [op(load, 4), op(jeq, arch, 1, 0), op(ret, kill), op(load, 0)]
    if machine == "x86_64":  # x32 calls share the architecture, numbered from 2**30
        prog += [op(jge, 0x40000000, 0, 1), op(ret, eperm)]
    for name in REFUSED:
        prog += [op(jeq, number[name], 0, 1), op(ret, eperm)]
    # Once an argument is loaded the number is gone: each branch ends in a return.
    # Unix sockets, and netlink's route family (libzmq reads the interfaces
    # through it at start-up, and aborts without it); nothing else.
    prog += [op(jeq, number["socket"], 0, 7), op(load, 16),
             op(jeq, AF_UNIX, 3, 0), op(jeq, AF_NETLINK, 0, 3),
             op(load, 32), op(jeq, NETLINK_ROUTE, 0, 1),
             op(ret, allow), op(ret, eafnosupport)]
    prog += [op(jeq, number["setsockopt"], 0, 9), op(load, 24),
             op(jeq, SOL_SOCKET, 0, 5), op(load, 32),
             *[op(jeq, option, 4 - i, 0) for i, option in enumerate(BUFFER_OPTIONS)],
             op(ret, allow), op(ret, eperm)]
    prog += [op(jeq, number["clone3"], 0, 1), op(ret, enosys),
             op(jeq, number["clone"], 1, 0), op(jeq, number["unshare"], 0, 3),
             op(load, 16), op(jset, CLONE_NEWUSER, 0, 1), op(ret, eperm),
             op(ret, allow)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*prog)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    program = Program(len(prog), filters)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0):
        raise OSError(ctypes.get_errno(), "the seccomp filter was refused")


def counts_own_processes() -> bool:
    """Whether RLIMIT_NPROC here counts only this user namespace's processes.

    Linux counts them per user namespace since 5.14 ("Reimplement RLIMIT_NPROC
    on top of ucounts", commit 21d1c5e386bc); before that, and in the initial
    namespace, it counts every process of the user on the machine.
    """
    with open("/proc/self/uid_map") as mapping:
        initial = mapping.read().split() == ["0", "0", "4294967295"]
    release = tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2])
    return not initial and release >= (5, 14)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    limits = json.loads(os.environ.pop("COURSE_LIMITS", "{}"))
    uid = int(os.environ.pop("COURSE_UID", "-1"))
    extra_path = os.environ.pop("COURSE_PYTHONPATH", "")
    drop_to_uid = uid > 0 and os.getuid() == 0
    for name, value in limits.items():
        if name == "RLIMIT_NPROC" and not (
                drop_to_uid or (uid == 0 and counts_own_processes())):
            continue  # it would count processes outside; see the docstring
        resource.setrlimit(getattr(resource, name), (value, value))
    # The connection file belongs to the grader (mode 600): read it while we
    # still may, and hand ipykernel a copy in the home folder.
    where = sys.argv.index("-f") + 1
    with open(sys.argv[where]) as handle:
        connection = handle.read()
    home = os.environ.get("HOME", "/tmp")
    os.makedirs(home, exist_ok=True)
    if drop_to_uid:
        os.chown(home, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    sys.argv[where] = os.path.join(home, ".connection.json")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with open(os.open(sys.argv[where], flags, 0o600), "w") as out:
        out.write(connection)
    if uid == -1 and os.uname().machine not in SYSCALLS:  # --unsafe: no sandbox
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    else:
        refuse_syscalls(os.uname().machine)

    fonts = os.path.join(here, "mplcache")
    config = os.environ.get("MPLCONFIGDIR")
    if config and os.path.isdir(fonts) and not os.path.exists(config):
        shutil.copytree(fonts, config)  # no font-cache rebuild (and its stderr)
    sys.path[:0] = [p for p in extra_path.split(os.pathsep) if p] + [here]

    exit_with_parent()
    import course_bridge  # noqa: F401 (imported now, before any learner code)
    from ipykernel.kernelapp import launch_new_instance

    # Our stdout and stderr are the grading worker's (the instructor's terminal, a
    # Dask worker's log), where ipykernel would echo every byte written to fd 1 or
    # 2 (by a subprocess, or os.write). Outputs reach the grader by sockets only.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.close(quiet)
    # Neither ipykernel's debugger nor a saved input history serves a graded
    # notebook; they cost a plain kernel 0.13 of the 0.47 s of CPU time it took
    # to start and run one cell (measured 2026-12-02).
    sys.modules["debugpy"] = None  # import fails: ipykernel runs without it
    sys.argv = ["ipykernel_launcher", *sys.argv[1:], "--HistoryManager.enabled=False"]
    launch_new_instance()


if __name__ == "__main__":
    main()
