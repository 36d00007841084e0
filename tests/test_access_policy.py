"""The dashboard's access policy (lthvp.ui.access) and the store's audit log
(lthvp.results.audit_log): who may write, how a secret is compared, what is recorded, and that a
record changed or removed after it was written is named on read. The pages under the policy run
in AppTest with the secret set through AppTest's own secrets (no file of the repo or the user)."""

import hmac
import sqlite3
import subprocess
import sys

import pytest

from helpers import page_bundle

SECRET = "correct horse battery staple"


# --- the policy ----------------------------------------------------------------------------------
def test_the_policy_follows_the_secrets():
    from lthvp.ui.access import CLOSED, OIDC, OPEN, SECRET as MODE_SECRET, policy_from

    assert policy_from({}).mode == OPEN
    assert policy_from({"lthvp": {}}).mode == OPEN
    policy = policy_from({"lthvp": {"operator_secret": SECRET}})
    assert policy.mode == MODE_SECRET and SECRET not in repr(policy)  # never printed with the policy
    for bad in ({"lthvp": {"operator_secret": "short"}}, {"lthvp": {"operator_secret": 123456789012345}},
                {"lthvp": "not a table"}, {"lthvp": {"operator_secret": SECRET, "operators": "ada@lab.org"}},
                {"lthvp": {"operators": ["ada@lab.org", 3]}}):
        closed = policy_from(bad)
        assert closed.mode == CLOSED and closed.problem, bad
    auth = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
            "google": {"client_id": "id", "client_secret": "s", "server_metadata_url": "https://idp/.well-known"}}
    policy = policy_from({"auth": auth, "lthvp": {"operator_secret": SECRET, "operators": [" Ada@Lab.org "]}})
    assert (policy.mode, policy.operators, policy.providers) == (OIDC, ("ada@lab.org",), ("google",))


def test_the_secret_is_compared_in_constant_time(monkeypatch):
    from lthvp.ui import access

    policy = access.policy_from({"lthvp": {"operator_secret": SECRET}})
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(access.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert access.secret_matches(policy, SECRET)
    assert not access.secret_matches(policy, SECRET + " ")
    assert not access.secret_matches(policy, SECRET.upper())
    assert not access.secret_matches(policy, "\udcff non-ascii \u00e9")  # bytes compared: no TypeError
    assert len(calls) == 4 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    assert not access.secret_matches(policy, "") and not access.secret_matches(policy, None)
    assert not access.secret_matches(access.policy_from({}), SECRET)  # an open instance has no secret to match


def test_who_may_write_under_each_policy():
    from lthvp.ui.access import OIDC, OPEN, SECRET as MODE_SECRET, Operator, policy_from, session_operator

    open_, secret = policy_from({}), policy_from({"lthvp": {"operator_secret": SECRET}})
    closed = policy_from({"lthvp": {"operator_secret": "short"}})
    auth = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "i",
            "client_secret": "s", "server_metadata_url": "https://idp/.well-known"}
    listed = policy_from({"auth": auth, "lthvp": {"operators": ["ada@lab.org"]}})
    anyone = policy_from({"auth": auth})
    ada = {"is_logged_in": True, "email": "ADA@lab.org", "sub": "1"}
    bob = {"is_logged_in": True, "email": "bob@lab.org", "sub": "2"}

    assert session_operator(open_, None, {}) == Operator("", OPEN)
    assert session_operator(secret, None, {}) is None
    assert session_operator(secret, "ada", {}) == Operator("ada", MODE_SECRET)
    assert session_operator(closed, "ada", ada) is None  # a closed instance has no operators at all
    assert session_operator(listed, None, ada) == Operator("ada@lab.org", OIDC)
    assert session_operator(listed, None, bob) is None
    assert session_operator(listed, "bob", {"is_logged_in": False}) is None  # a typed name is no login
    assert session_operator(anyone, None, bob) == Operator("bob@lab.org", OIDC)
    assert session_operator(anyone, None, {"is_logged_in": True, "sub": "idp-7"}) == Operator("idp-7", OIDC)


def test_wrong_secrets_are_throttled_per_client():
    from lthvp.ui.access import Throttle

    t = Throttle(limit=3, window_s=60)
    for i in range(3):
        assert t.wait_s("10.0.0.1", now=100 + i) == 0
        t.fail("10.0.0.1", now=100 + i)
    assert t.wait_s("10.0.0.1", now=103) == pytest.approx(57)
    assert t.wait_s("10.0.0.2", now=103) == 0  # another client is not held up
    assert t.wait_s("10.0.0.1", now=160.5) == 0  # the first failure left the window


def test_a_viewer_is_refused_at_the_write_itself(tmp_path, monkeypatch):
    """Pages disable write controls for viewers (Streamlit drops a forged value of a disabled
    widget); the write path checks again, so a control enabled by mistake writes nothing."""
    from lthvp.results.audit_log import AuditLog
    from lthvp.ui import access

    monkeypatch.setenv("LTHVP_STORE", str(tmp_path))
    assert access.record(None, "delete", "0123456789abcdef") is False
    assert AuditLog(tmp_path).read() == ([], [])
    assert access.record(access.Operator("ada", access.SECRET), "delete", "0123456789abcdef") is True
    assert [(e.who, e.action) for e in AuditLog(tmp_path).read()[0]] == [("ada", "delete")]


# --- the audit log -------------------------------------------------------------------------------
def test_entries_come_back_newest_first_as_one_clean_line(tmp_path):
    from lthvp.results.audit_log import LIMITS, AuditError, AuditLog

    log = AuditLog(tmp_path)
    assert log.read() == ([], [])  # no file yet: an empty log, and reading creates nothing
    assert not log.path.exists()
    log.append("ada", "secret", "unlock", "operator session opened", client="10.0.0.7")
    log.append("", "open", "queue", "2 run(s): 0123456789abcdef\n\x1b[31mfedcba9876543210")
    log.append("x" * 500, "open", "delete", "y" * 5000)
    entries, problems = log.read()
    assert problems == []
    assert [e.seq for e in entries] == [3, 2, 1] and [e.action for e in entries] == ["delete", "queue", "unlock"]
    assert entries[2].who == "ada" and entries[2].client == "10.0.0.7" and entries[2].how == "secret"
    assert entries[1].who == "anonymous"
    assert "\n" not in entries[1].detail and "\x1b" not in entries[1].detail and "\\x1b[31m" in entries[1].detail
    assert len(entries[0].who) == LIMITS["who"] and len(entries[0].detail) == LIMITS["detail"]
    assert entries[0].when.endswith("UTC") and entries[0].at >= entries[2].at
    assert [e.seq for e in log.read(newest=2)[0]] == [3, 2]
    with pytest.raises(AuditError, match="unknown audit action"):
        log.append("ada", "secret", "drop table", "")
    assert len(log.read()[0]) == 3


def test_the_table_refuses_update_and_delete(tmp_path):
    from lthvp.results.audit_log import AuditLog

    log = AuditLog(tmp_path)
    log.append("ada", "secret", "import", "bundle.zip")
    con = sqlite3.connect(log.path)
    for sql in ("UPDATE entries SET who = 'mallory'", "DELETE FROM entries"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.close()
    assert [e.who for e in log.read()[0]] == ["ada"]


def _tamper(path, *statements):
    con = sqlite3.connect(path)
    con.executescript("DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;" + ";".join(statements))
    con.close()


def test_an_entry_changed_or_removed_by_hand_is_named_on_read(tmp_path):
    from lthvp.results.audit_log import AuditLog

    log = AuditLog(tmp_path)
    for i in range(6):
        log.append(f"user{i}", "secret", "cancel", f"job {i}")
    _tamper(log.path, "UPDATE entries SET who = 'mallory' WHERE seq = 2", "DELETE FROM entries WHERE seq = 4",
            "UPDATE entries SET action = 'wipe' WHERE seq = 6")
    entries, problems = log.read()
    assert [e.seq for e in entries] == [5, 3, 1]  # what still verifies; 5 follows a gap and is not judged
    assert any(p.startswith("entry 2: changed after it was written") for p in problems), problems
    assert "entries 4..4 are missing (removed after they were written)" in problems
    assert any(p.startswith("entry 6: unknown action") for p in problems), problems
    assert "mallory" not in {e.who for e in entries}
    # a value of the wrong type or with a line break is reported, not trusted, and does not stop the read
    _tamper(log.path, "INSERT INTO entries VALUES (7, 'noon', 'x', 'secret', '', 'cancel', 'd', 'z')",
            "INSERT INTO entries VALUES (8, 1.0, 'two\nlines', 'secret', '', 'cancel', 'd', 'z')")
    problems = log.read()[1]
    assert any(p.startswith("entry 7: time") for p in problems) and any(p.startswith("entry 8: who") for p in problems)


def test_a_damaged_or_unwritable_log_raises_one_line(tmp_path):
    from lthvp.results.audit_log import AuditError, AuditLog

    log = AuditLog(tmp_path)
    log.path.write_bytes(b"not a database" * 100)
    with pytest.raises(AuditError, match="cannot be read"):
        log.read()
    with pytest.raises(AuditError, match="cannot be opened|cannot be written"):
        log.append("ada", "secret", "queue", "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(AuditError, match="cannot be opened"):
        AuditLog(tmp_path / "file").append("ada", "secret", "queue", "x")  # the store path is a file
    with pytest.raises(AuditError, match="empty"):
        AuditLog("")


APPEND_MANY = """
import sys
from lthvp.results.audit_log import AuditLog
log = AuditLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    log.append(sys.argv[2], "secret", "queue", f"{sys.argv[2]} {i}")
"""


def test_processes_appending_at_once_keep_one_chain(tmp_path):
    from lthvp.results.audit_log import AuditLog

    procs = [subprocess.Popen([sys.executable, "-c", APPEND_MANY, str(tmp_path), f"p{k}", "15"]) for k in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    entries, problems = AuditLog(tmp_path).read()
    assert problems == [] and sorted(e.seq for e in entries) == list(range(1, 46))
    assert sorted(e.detail for e in entries) == sorted(f"p{k} {i}" for k in range(3) for i in range(15))


# --- the pages under the policy (AppTest) ---------------------------------------------------------
@pytest.fixture
def served(tmp_path, monkeypatch):
    """A store with the small page bundle, served to AppTest; autostarting workers off."""
    from streamlit import cache_data, cache_resource

    from lthvp.results.store import ResultStore

    store = ResultStore(tmp_path / "store")
    store.import_bundle(page_bundle())
    monkeypatch.setenv("LTHVP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    cache_data.clear()
    cache_resource.clear()
    yield store
    cache_data.clear()
    cache_resource.clear()


def page(path, secrets=None, query=None):
    from streamlit.testing.v1 import AppTest

    from helpers import REPO

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.secrets.update(secrets or {})
    at.switch_page(path)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def unlock(at, name, typed):
    at.text_input(key="access_name").input(name)
    at.text_input(key="access_secret").input(typed)
    next(b for b in at.button if b.label == "Unlock").click()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


RUN_QUERY = {"r_seeds": "7", "r_methods": "LP", "r_epochs": "1", "r_levels": "L0"}


def test_a_viewer_cannot_write_and_an_unlocked_session_is_recorded(served):
    from lthvp.compute.jobs import JobQueue
    from lthvp.results.audit_log import AuditLog

    secrets = {"lthvp": {"operator_secret": SECRET}}
    at = page("pages/run.py", secrets, RUN_QUERY)
    assert at.button(key="submit").disabled and "1 to train" in at.markdown[0].value
    assert any("Viewing only" in i.value for i in at.info)
    forged = at.button(key="submit")
    forged._value = True  # a click a browser cannot make (the button is disabled): a forged websocket message
    at.run()
    assert JobQueue.for_store(served.directory).jobs() == []

    unlock(at, "ada", "wrong secret, long enough")
    assert any("not the operator secret" in e.value for e in at.error) and at.button(key="submit").disabled
    unlock(at, "ada", SECRET)
    assert not at.button(key="submit").disabled
    at.button(key="submit").click().run()
    (job,) = JobQueue.for_store(served.directory).jobs()
    at.button(key=f"cancel_{job['id']}").click().run()
    assert JobQueue.for_store(served.directory).get(job["id"])["state"] == "cancelled"

    entries, problems = AuditLog(served.directory).read()
    assert problems == []
    assert [(e.who, e.how, e.action) for e in reversed(entries)] == [
        ("ada", "secret", "unlock"), ("ada", "secret", "unlock"), ("ada", "secret", "queue"),
        ("ada", "secret", "cancel")]
    assert entries[-1].detail == "refused: wrong operator secret" and job["id"] in entries[0].detail

    bundles = page("pages/bundles.py", secrets)  # a new session: a viewer again
    assert [u.key for u in bundles.file_uploader] == []  # no uploader for a viewer
    assert next(b for b in bundles.button if b.label == "Delete").disabled
    assert bundles.dataframe[-1].value["action"].tolist() == ["cancel", "queue", "unlock", "unlock"]


def test_an_unlocked_session_imports_and_deletes_and_both_are_recorded(served, tmp_path):
    from lthvp.results.audit_log import AuditLog

    at = unlock(page("pages/bundles.py", {"lthvp": {"operator_secret": SECRET}}), "grace", SECRET)
    at.file_uploader(key="b_upload_0").upload("again.zip", page_bundle().read_bytes(), "application/zip")
    at.run()
    victim = served.hashes()[0]
    at.text_area(key="b_delete_hashes").input(f"{victim} not-a-hash")
    next(b for b in at.button if b.label == "Delete").click()
    at.run()
    assert any("not a hash" in e.value for e in at.error) and served.has(victim)
    at.text_area(key="b_delete_hashes").input(victim)
    next(b for b in at.button if b.label == "Delete").click()
    at.run()
    assert not served.has(victim) and any("Deleted 1 result" in s.value for s in at.success)
    actions = [(e.who, e.action) for e in AuditLog(served.directory).read()[0]]
    assert actions == [("grace", "delete"), ("grace", "import result"), ("grace", "import"), ("grace", "unlock")]
    entries = AuditLog(served.directory).read()[0]
    assert entries[0].detail == victim and "again.zip" in entries[2].detail and "sha256" in entries[2].detail


def test_an_open_instance_says_so_on_every_write_page_and_records_the_typed_name(served):
    from lthvp.results.audit_log import AuditLog

    for path in ("pages/run.py", "pages/bundles.py"):
        at = page(path)
        assert any("This instance is open" in w.value for w in at.warning), path
    at = page("pages/run.py", query=dict(RUN_QUERY, user="Ada [x](javascript:alert(1))"))
    at.button(key="submit").click().run()
    (entry,), _ = AuditLog(served.directory).read()
    assert (entry.who, entry.how, entry.action) == ("Ada [x](javascript:alert(1))", "open", "queue")


def test_a_secrets_file_that_cannot_be_used_closes_writes(served):
    at = page("pages/bundles.py", {"lthvp": {"operator_secret": "short"}})
    assert any("writes are off" in e.value for e in at.error)
    assert [u.key for u in at.file_uploader] == []


def test_a_write_the_audit_log_cannot_record_is_refused(served):
    from lthvp.compute.jobs import JobQueue
    from lthvp.results.audit_log import FILE

    at = page("pages/run.py", query=RUN_QUERY)
    (served.directory / FILE).mkdir()  # the log's path is taken by a directory: no entry can be written (even as root)
    at.button(key="submit").click().run()
    assert any("audit log cannot record it" in e.value for e in at.error)
    assert JobQueue.for_store(served.directory).jobs() == []
