"""Learner code never runs as root: as root, the grader's workers give up root before it runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.grading.builders import ROOT, by_name, grade, write_notebook
from tfmcourse.grading.secure import isolation, privileges, sandbox

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the grader is not root: no privilege to give up")


def probe(targets: dict[str, str]) -> str:
    """A causal_mask that reports its user ids and, for each target, whether the action succeeded."""
    return textwrap.dedent(f"""
        import os
        import subprocess

        def causal_mask(T):
            out = ["uid=%d euid=%d" % (os.getuid(), os.geteuid())]
            out.append("id=" + subprocess.run(["id"], capture_output=True, text=True).stdout.strip())
            for what, action in {targets!r}.items():
                try:
                    exec(action)
                    out.append(what + ":allowed")
                except OSError as exc:
                    out.append(what + ":refused " + type(exc).__name__)
            raise RuntimeError("probe|" + "|".join(out))
    """)


@pytest.fixture
def class_folder():
    """A class folder like an instructor's (readable by all, writable by its owner), holding a
    file only root may read."""
    path = Path(tempfile.mkdtemp(prefix="tfmcourse-class-", dir="/var/tmp"))  # bwrap keeps /var/tmp in view
    path.chmod(0o755)
    (path / "ann").mkdir(mode=0o755)
    secret = path / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def outcome(message: str) -> tuple[str, str, dict[str, str]]:
    """(its user ids, what `id` printed, each target's outcome) from the probe's message."""
    assert "probe|" in message, message
    ids, id_out, *parts = message.split("probe|", 1)[1].split(" (line")[0].split("|")
    return ids, id_out, dict(p.split(":", 1) for p in parts)


TARGETS = {
    "course": f"open({str(ROOT / 'tfmcourse' / 'checks' / 'zz_learner_was_here.py')!r}, 'w').write('x')",
    "class": "open(CLASS + '/ann/06_b.ipynb', 'w').write('x')",
    "secret": "open(CLASS + '/secret.txt').read()",
    "own-folder": "open('mine.txt', 'w').write('x')",
    "lazy-import": "import wave, ctypes.util, xml.dom.minidom",
}


def run_probe(tmp_path, class_folder, **settings):
    targets = {k: v.replace("CLASS", repr(str(class_folder))) for k, v in TARGETS.items()}
    path = write_notebook(class_folder / "ann" / "06_a.ipynb", {"causal_mask": probe(targets)})
    try:
        if settings:
            from tfmcourse.grading.secure.grade import Settings, grade_path

            e = by_name(grade_path(str(path), str(path), Settings(seed=4242, **settings)))["causal_mask"]
        else:
            e = by_name(grade(path))["causal_mask"]
    finally:
        Path(ROOT / "tfmcourse" / "checks" / "zz_learner_was_here.py").unlink(missing_ok=True)
    return e.message, outcome(e.message)


@as_root
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["none", "bwrap"])
def test_learner_code_runs_as_an_unprivileged_user_when_the_grader_is_root(tmp_path, class_folder, mode):
    if mode == "bwrap" and isolation.bwrap_problem():
        pytest.skip(isolation.bwrap_problem())
    # the class folder stays in view under bwrap: what refuses here is the user, not the sandbox
    message, (ids, id_out, seen) = run_probe(
        tmp_path, class_folder, **({"isolation": mode} if mode == "bwrap" else {})
    )
    uid, euid = (int(x.split("=")[1]) for x in ids.split())
    assert uid >= privileges.BASE_UID and euid == uid, message
    assert id_out.startswith(f"id=uid={uid} gid={uid}") and "root" not in id_out and "(0)" not in id_out, (
        message
    )
    assert seen["course"].startswith("refused"), message
    assert seen["class"].startswith("refused"), message
    assert seen["secret"].startswith("refused"), message
    assert seen["own-folder"] == "allowed", message
    assert seen["lazy-import"] == "allowed", message  # the Python installation stays importable


@as_root
@pytest.mark.slow
def test_each_exercise_runs_as_a_user_of_its_own(tmp_path):
    codes = {
        n: f"import os\n\ndef {n}(*args):\n    raise RuntimeError('uid=%d;' % os.getuid())\n"
        for n in ("causal_mask", "padding_mask")
    }
    r = by_name(grade(write_notebook(tmp_path / "06_u.ipynb", codes)))
    uids = {int(r[n].message.split("uid=")[1].split(";")[0]) for n in codes}
    assert len(uids) == 2 and min(uids) >= privileges.BASE_UID, [r[n].message for n in codes]


def test_nothing_changes_when_the_grader_is_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert privileges.plan("auto") is None
    assert "your user" in privileges.describe(None)
    with pytest.raises(privileges.RunAsUnavailable, match="not root"):
        privileges.plan("nobody")
    assert privileges.unreadable(None, ["/nonexistent"]) is None


def test_the_account_to_run_as_is_checked(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert privileges.plan("auto") == {"base": privileges.BASE_UID}
    assert privileges.identity({"base": privileges.BASE_UID}, 1234) == (privileges.BASE_UID + 1234,) * 2
    assert privileges.plan("54321") == {"uid": 54321, "gid": 54321}
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert privileges.plan("nobody") == {"uid": nobody.pw_uid, "gid": nobody.pw_gid}
    for bad in ("root", "0"):
        with pytest.raises(privileges.RunAsUnavailable, match="never runs as root"):
            privileges.plan(bad)
    with pytest.raises(privileges.RunAsUnavailable, match="no such user"):
        privileges.plan("no-such-user-here")


def test_a_python_installation_others_cannot_read_is_refused_with_the_fix(tmp_path, monkeypatch):
    private = tmp_path / "site"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(sandbox, "python_folders", lambda: [str(private)])
    user = {"base": privileges.BASE_UID}
    problem = sandbox.python_problem(user)
    assert problem is not None and str(private) in problem and "mode 700" in problem and "--run-as" in problem
    private.chmod(0o755)
    assert sandbox.python_problem(user) is None


@as_root
@pytest.mark.slow
def test_modules_behind_a_home_only_root_can_enter_are_still_imported(tmp_path, monkeypatch):
    """A site folder inside a mode-700 folder (``/root/...``): the worker reaches it through the
    descriptor it opened before giving up root."""
    home = tmp_path / "home"
    site = home / "site-packages"
    site.mkdir(parents=True)
    home.chmod(0o700)
    (site / "lazy_module_for_a_test.py").write_text("ANSWER = 42\n")
    real = sandbox.sysconfig.get_paths()
    monkeypatch.setattr(sandbox.sysconfig, "get_paths", lambda: {**real, "platlib": str(site)})
    monkeypatch.setattr(sandbox, "_SANDBOXES", {})
    code = "def causal_mask(T):\n    import lazy_module_for_a_test as m\n    raise RuntimeError('answer=%d' % m.ANSWER)\n"
    try:
        e = by_name(grade(write_notebook(tmp_path / "06_lazy.ipynb", {"causal_mask": code})))["causal_mask"]
    finally:
        for box in sandbox._SANDBOXES.values():
            box.close()
    assert "answer=42" in e.message, e.message


def test_every_process_of_a_workers_own_user_is_killed():
    import subprocess

    uid = privileges.BASE_UID + 4_000_000  # above any pid: no worker has it
    if os.geteuid() != 0:
        pytest.skip("only root can start a process as another user")
    procs = [subprocess.Popen(["sleep", "60"], user=uid, group=uid, extra_groups=[]) for _ in range(3)]
    assert all(privileges.uid_of(p.pid) == uid for p in procs)
    privileges.kill_users({uid})
    assert all(p.wait(timeout=10) == -9 for p in procs)


@as_root
@pytest.mark.slow
def test_run_as_names_the_account_learner_code_runs_as(tmp_path):
    import pwd

    from tfmcourse.grading.secure.grade import Settings, grade_path

    nobody = pwd.getpwnam("nobody")
    code = "import os\n\ndef causal_mask(T):\n    raise RuntimeError('ids=%d,%d;' % (os.geteuid(), os.getegid()))\n"
    path = write_notebook(tmp_path / "06_n.ipynb", {"causal_mask": code})
    e = by_name(grade_path(str(path), str(path), Settings(seed=4242, run_as="nobody")))["causal_mask"]
    assert f"ids={nobody.pw_uid},{nobody.pw_gid};" in e.message, e.message


def test_the_command_line_refuses_to_run_learner_code_as_root(tmp_path, capsys):
    from tfmcourse import cli

    nb = write_notebook(tmp_path / "06_a.ipynb", {"causal_mask": "def causal_mask(T):\n    pass\n"})
    code = cli.main(["grade", "--secure", str(nb), "--isolation", "none", "--run-as", "root"])
    err = capsys.readouterr().err
    assert code == 2
    assert ("never runs as root" if os.geteuid() == 0 else "not root") in err, err


def test_a_user_namespace_that_maps_few_ids_falls_back_to_nobody_or_is_refused(monkeypatch):
    """Rootless containers map a few thousand ids: the per-worker range is not there, so learner
    code runs as the container's nobody; with no nobody it maps, grading is refused with the fix."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    whole = [[(0, 0, 4294967295)], [(0, 0, 4294967295)]]
    monkeypatch.setattr(privileges, "_id_maps", lambda: whole)
    assert privileges.plan("auto") == {"base": privileges.BASE_UID}
    rootless = [[(0, 1000, 1), (1, 100000, 65536)], [(0, 1000, 1), (1, 100000, 65536)]]
    monkeypatch.setattr(privileges, "_id_maps", lambda: rootless)
    assert privileges.plan("auto") == {"uid": nobody.pw_uid, "gid": nobody.pw_gid}
    with pytest.raises(privileges.RunAsUnavailable, match="does not map uid/gid 70000"):
        privileges.plan("70000")
    tiny = [[(0, 1000, 1), (1, 100000, 1000)], [(0, 1000, 1), (1, 100000, 1000)]]
    monkeypatch.setattr(privileges, "_id_maps", lambda: tiny)
    with pytest.raises(privileges.RunAsUnavailable, match="--run-as USER"):
        privileges.plan("auto")
    assert privileges.plan("500") == {"uid": 500, "gid": 500}
