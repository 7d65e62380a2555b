"""Who learner code runs as: never root.

When the grader runs as root (as it does inside Gradescope's or PrairieLearn's
container), each forked worker gives up root before any learner code runs: no
supplementary groups, its own group and user id, ``PR_SET_NO_NEW_PRIVS``, and
a limit on its number of processes. By default every worker gets a user id of
its own, ``BASE_UID`` + its pid (a range no account database or container
manager assigns; pids are unique among live processes, so two workers never
share one): it cannot signal, trace or open the ``/proc`` entries of the
grader, of the interpreter that forked it or of another submission's worker,
and the grader kills every process of that user when the exercise ends.
``--run-as USER`` uses an existing account instead (then shared by the
workers that run at the same time). When the grader is not root there is no
privilege to give up and nothing changes.

Loaded by the worker by path (never imports the course): :func:`drop` runs
there; the rest runs in the trusted grader.
"""

from __future__ import annotations

import contextlib
import os
import sys

BASE_UID = 0x70000000  # 1879048192: above the container ranges, below systemd's "foreign" range
NPROC = 128  # processes (threads count too) a worker's user may have at once


class RunAsUnavailable(RuntimeError):
    """The account learner code should run as cannot be used (the message says why)."""


def plan(run_as: str = "auto") -> dict | None:
    """What the worker is told to become: None (the grader is not root), ``{"base": n}`` (a user of
    its own, ``n`` + its pid) or ``{"uid": u, "gid": g}`` (the account ``run_as``)."""
    if os.geteuid() != 0:
        if run_as not in ("auto", ""):
            raise RunAsUnavailable(f"--run-as {run_as}: the grader is not root, so it cannot change user")
        return None
    import pwd

    if run_as in ("auto", ""):
        if _mapped(BASE_UID, BASE_UID + _pid_max()):
            return {"base": BASE_UID}
        # a container whose user namespace maps few ids (rootless Docker or Podman): its nobody
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        ids = (nobody.pw_uid, nobody.pw_gid) if nobody else (0, 0)
        if 0 not in ids and all(_mapped(i, i) for i in ids):
            return {"uid": nobody.pw_uid, "gid": nobody.pw_gid}
        raise RunAsUnavailable(
            "this container's user namespace maps neither the ids learner code runs as by default "
            f"({BASE_UID} and up) nor a 'nobody' account: pass --run-as USER, an account it maps"
        )

    try:
        entry = pwd.getpwuid(int(run_as)) if run_as.isdigit() else pwd.getpwnam(run_as)
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        if not run_as.isdigit():
            raise RunAsUnavailable(f"--run-as {run_as}: no such user") from None
        uid = gid = int(run_as)  # a bare number needs no account
    if uid == 0 or gid == 0:
        raise RunAsUnavailable(f"--run-as {run_as}: learner code never runs as root (uid or gid 0)")
    if not (_mapped(uid, uid) and _mapped(gid, gid)):
        raise RunAsUnavailable(
            f"--run-as {run_as}: this container's user namespace does not map uid/gid {uid}/{gid}"
        )
    return {"uid": uid, "gid": gid}


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 22  # the largest the kernel allows


def _id_maps() -> list[list[tuple[int, int, int]]]:
    """This process's user namespace: ``/proc/self/uid_map`` and ``gid_map`` as (inside, outside,
    count) ranges; a table that cannot be read is left out (no namespace to respect)."""
    maps = []
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/self/{name}") as f:
                maps.append([tuple(map(int, line.split())) for line in f if line.strip()])
        except (OSError, ValueError):
            pass
    return maps


def _mapped(first: int, last: int) -> bool:
    """Whether user and group ids ``first``…``last`` exist in this user namespace: a process can
    take only ids both of its tables map."""
    return all(any(lo <= first and last < lo + n for lo, _, n in ranges) for ranges in _id_maps())


def identity(spec: dict, pid: int) -> tuple[int, int]:
    """(uid, gid) of the worker ``pid`` under ``spec`` (see :func:`plan`)."""
    if "base" in spec:
        return spec["base"] + pid, spec["base"] + pid
    return spec["uid"], spec["gid"]


def describe(spec: dict | None) -> str:
    """A sentence for the report: who learner code runs as."""
    if spec is None:
        return f"learner code runs as your user (uid {os.geteuid()}: the grader is not root)"
    if "base" in spec:
        return f"learner code runs as a user of its own per exercise (uid {spec['base']} + its pid)"
    return f"learner code runs as uid {spec['uid']}, gid {spec['gid']}"


def drop(spec: dict | None, workdir: str) -> None:
    """In the worker, before any learner code: become the unprivileged user ``spec`` names, owning
    ``workdir`` (its home and temporary folder). Exits if any step fails: never run it as root."""
    if spec is None:
        return
    import resource
    import tempfile

    try:
        uid, gid = identity(spec, os.getpid())
        opened = {}  # the folders learner code imports from, opened while root can still reach them
        for entry in sys.path:
            with contextlib.suppress(OSError):
                opened[entry] = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chown(workdir, uid, gid)
        os.chmod(workdir, 0o700)
        os.environ.update(HOME=workdir, TMPDIR=workdir)
        tempfile.tempdir = workdir
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if os.getresuid() != (uid,) * 3 or os.getresgid() != (gid,) * 3 or os.getgroups():
            raise OSError("the user did not change")
        with contextlib.suppress(PermissionError):
            os.setuid(0)
            raise OSError("root could be regained")
        moved = {e: r for e in sys.path if (r := _reachable(e, opened.get(e))) != e}
        sys.path[:] = [moved.get(e, e) for e in sys.path]
        _move_packages(moved)
        for entry, fd in opened.items():
            if entry not in moved:
                os.close(fd)
    except BaseException:
        os._exit(5)


def uid_of(pid: int) -> int | None:
    """The real user id of process ``pid``, None if it is gone or a zombie (nothing left to kill)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and line.split()[1] in (b"Z", b"X"):
                    return None
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def kill_users(uids: set[int], rounds: int = 20) -> None:
    """Kill every process whose real user id is in ``uids``; again until none is left (a process
    forking while it is being killed), at most ``rounds`` times. Only for users of one worker."""
    import signal

    for _ in range(rounds):
        found = False
        for entry in os.listdir("/proc"):
            if entry.isdigit() and uid_of(int(entry)) in uids:
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
        if not found:
            return


def unreadable(spec: dict | None, paths: list[str]) -> str | None:
    """Why the user ``spec`` names could not import from every folder in ``paths`` (the Python
    installation), or None. Only the folders themselves count: a worker reaches a folder inside a
    home it cannot enter (a mode-700 ``/root``) through a descriptor opened before it gave up root."""
    if spec is None:
        return None
    uid, gid = identity(spec, os.getpid())
    for path in paths:
        st = os.stat(path)
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        if (st.st_mode >> shift) & 0o5 != 0o5:
            return f"{path} (mode {st.st_mode & 0o777:o}) cannot be read by uid {uid}"
    return None


def _move_packages(moved: dict[str, str]) -> None:
    """Point the submodule search path of every loaded package under a moved folder (``ctypes``
    finds ``ctypes.util`` through ``ctypes.__path__``, not ``sys.path``) at the same place."""
    if not moved:
        return
    for module in list(sys.modules.values()):
        path = getattr(module, "__path__", None)
        if type(path) is not list:
            continue
        for i, p in enumerate(path):
            for old, new in moved.items():
                if isinstance(p, str) and (p == old or p.startswith(old.rstrip("/") + "/")):
                    path[i] = new + p[len(old.rstrip("/")) :]
                    break


def _reachable(entry: str, fd: int | None) -> str:
    """``entry`` of ``sys.path`` if this process can list it, else the same folder through its
    descriptor ``fd``, opened while still root (``/proc/self/fd`` skips the folders above it)."""
    try:
        os.listdir(entry)
        return entry
    except OSError:
        if fd is None:
            return entry
        return f"/proc/self/fd/{fd}"
