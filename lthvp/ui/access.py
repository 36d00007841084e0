"""Who may write through the dashboard, and the record of what they wrote.

Viewers read; operators queue, cancel, clear, import and delete. The server names its operators
in Streamlit's secrets (``.streamlit/secrets.toml`` or ``secrets.files``), in one of two ways:

- an ``[auth]`` section (Streamlit's OIDC login, ``st.login``): signed-in users are operators,
  all of them or those listed in ``[lthvp] operators = ["ada@lab.org", ...]``;
- otherwise ``[lthvp] operator_secret = "..."`` (at least 12 characters): a session becomes an
  operator's once someone types it (compared with ``hmac.compare_digest``).

With neither the instance is open (every visitor writes; each write page says so); a secrets file
that cannot be parsed, or a secret that is too short, closes writes. The secret sits in a
``[lthvp]`` table on purpose: Streamlit copies top-level string secrets into ``os.environ``, which
the workers the app starts would inherit. Every write is first appended to the store's audit log
(:mod:`lthvp.results.audit_log`); a write that cannot be recorded is refused.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lthvp.paths import default_store_dir
from lthvp.results.audit_log import AuditError, AuditLog

OPEN, SECRET, OIDC, CLOSED = "open", "secret", "oidc", "closed"
SECTION = "lthvp"
MIN_SECRET_CHARS = 12
SESSION_KEY = "lthvp_operator"  # st.session_state: the unlocked operator's name (secret mode)
MAX_FAILURES, FAILURE_WINDOW_S = 5, 60.0  # wrong secrets per client before its form waits


@dataclass(frozen=True)
class Policy:
    mode: str  # OPEN, SECRET, OIDC or CLOSED
    secret: str = field(default="", repr=False)  # SECRET only; never shown
    operators: tuple[str, ...] = ()  # OIDC: e-mail addresses allowed to write (empty: every signed-in user)
    providers: tuple[str, ...] = ()  # OIDC: named providers ([auth.<name>]); empty: the default one
    problem: str = ""  # CLOSED: why writes are off


@dataclass(frozen=True)
class Operator:
    who: str  # login e-mail (OIDC), the name typed with the secret, or "" on an open instance
    how: str  # OIDC, SECRET or OPEN


def policy_from(secrets: Mapping) -> Policy:
    """The policy a server's secrets ask for (a plain mapping: testable without Streamlit)."""
    section = secrets.get(SECTION, {})
    if not isinstance(section, Mapping):
        return Policy(CLOSED, problem=f"[{SECTION}] in the secrets file is not a table")
    operators = section.get("operators", [])
    if not isinstance(operators, list) or not all(isinstance(o, str) and o.strip() for o in operators):
        return Policy(CLOSED, problem=f"[{SECTION}] operators is not a list of e-mail addresses")
    auth = secrets.get("auth")
    if isinstance(auth, Mapping) and auth:
        providers = tuple(sorted(k for k, v in auth.items() if isinstance(v, Mapping)))
        return Policy(OIDC, operators=tuple(o.strip().lower() for o in operators), providers=providers)
    secret = section.get("operator_secret")
    if secret is None:
        return Policy(OPEN)
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
        return Policy(CLOSED, problem=f"[{SECTION}] operator_secret must be a string of at least "
                                      f"{MIN_SECRET_CHARS} characters")
    return Policy(SECRET, secret=secret)


def secret_matches(policy: Policy, typed) -> bool:
    """Constant-time comparison of what a visitor typed with the configured secret."""
    if policy.mode != SECRET or not isinstance(typed, str) or not typed:
        return False
    return hmac.compare_digest(typed.encode("utf-8", "surrogatepass"), policy.secret.encode("utf-8"))


def oidc_operator(policy: Policy, user: Mapping) -> Operator | None:
    """The signed-in user (``st.user``) as an operator, or None (not signed in, or not listed)."""
    if policy.mode != OIDC or not user.get("is_logged_in"):
        return None
    email = str(user.get("email") or "").strip().lower()
    who = email or str(user.get("sub") or "").strip()
    if not who or (policy.operators and email not in policy.operators):
        return None
    return Operator(who, OIDC)


def session_operator(policy: Policy, unlocked: str | None, user: Mapping) -> Operator | None:
    """Whether this session may write under ``policy``: ``unlocked`` is the name a visitor gave
    with the right secret (None if they did not), ``user`` is ``st.user``."""
    if policy.mode == OPEN:
        return Operator("", OPEN)
    if policy.mode == SECRET and unlocked is not None:
        return Operator(unlocked, SECRET)
    return oidc_operator(policy, user)


class Throttle:
    """At most ``MAX_FAILURES`` wrong secrets per client within ``FAILURE_WINDOW_S`` (all sessions
    of this server together), so guessing cannot run at the speed of the websocket."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.time() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
            self._failures[client] = recent
            return 0.0 if len(recent) < self.limit else self.window_s - (now - recent[0])

    def fail(self, client: str, now: float | None = None) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # bounded: forget everyone rather than grow forever
                self._failures.clear()
            self._failures.setdefault(client, []).append(time.time() if now is None else now)


THROTTLE = Throttle()


# --- inside a Streamlit session ------------------------------------------------------------------
def current_policy() -> Policy:
    """The running server's policy, from the secrets Streamlit reads (parsed once per process)."""
    import streamlit as st
    from streamlit import config

    try:
        return policy_from(st.secrets.to_dict())
    except FileNotFoundError:  # Streamlit's "no secrets file", also raised for a file it cannot parse
        files = [Path(p) for p in config.get_option("secrets.files")]
        if any(p.is_file() for p in files):
            return Policy(CLOSED, problem="the secrets file cannot be parsed (see the server log)")
        return Policy(OPEN)


def _user() -> Mapping:
    import streamlit as st

    try:
        return st.user.to_dict()
    except Exception:  # no [auth] section or no login: nobody is signed in
        return {}


def client() -> str:
    """The browser's address as the server sees it ("local" for loopback connections)."""
    import streamlit as st

    try:
        return st.context.ip_address or "local"
    except Exception:  # AppTest and bare runs have no connection
        return "local"


def current() -> Operator | None:
    """This session's operator, or None for a viewer; draws nothing (for fragments and rows)."""
    import streamlit as st

    return session_operator(current_policy(), st.session_state.get(SESSION_KEY), _user())


def record(op: Operator | None, action: str, detail: str, name: str = "") -> bool:
    """Append a write to the audit log before it happens; False (and one error line) when the
    session may not write or the log cannot take the entry: the caller then does not act.
    ``name`` is the name a visitor typed on an open instance (unverified, recorded as such)."""
    import streamlit as st

    if op is None:
        st.error("Viewing only: this needs an operator (see the access box at the top of the page).",
                 icon=":material/lock:")
        return False
    who = op.who if op.how != OPEN else (" ".join(str(name).split()) or "anonymous")
    try:
        audit_log().append(who, op.how, action, detail, client=client())
    except AuditError as err:
        st.error(f"Not done: the audit log cannot record it ({err}).", icon=":material/error:")
        return False
    return True


def audit_log() -> AuditLog:
    """The audit log of the store this app serves."""
    return AuditLog(Path(default_store_dir()).resolve())


def gate() -> Operator | None:
    """The access box at the top of a write page: says who may write and, for a viewer, how to
    become an operator. Returns this session's operator, or None (the page then disables writes)."""
    import streamlit as st

    policy, op = current_policy(), current()
    if policy.mode == OPEN:
        st.warning("This instance is open: anyone who can reach it can queue, cancel, import and delete. "
                   "Each write is recorded in the audit log (Bundles page). To limit writes to operators, set an "
                   "operator secret or a login in the server's secrets (docs/DASHBOARD.md, Access).",
                   icon=":material/lock_open:")
    elif policy.mode == CLOSED:
        st.error(f"Viewing only: writes are off because {policy.problem}. The server's administrator can fix "
                 "its secrets file and restart it.", icon=":material/lock:")
    elif op is not None:
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.text(f"Operator: {op.who} ({'signed in' if op.how == OIDC else 'operator secret'}); every write is "
                "recorded in the audit log (Bundles page).")  # a typed name or a login: plain text, never Markdown
        if op.how == SECRET and c2.button("Lock", key="access_lock", help="back to viewing only"):
            st.session_state.pop(SESSION_KEY, None)
            st.rerun()
        if op.how == OIDC and c2.button("Log out", key="access_logout"):
            st.logout()
    elif policy.mode == SECRET:
        _unlock_form(st, policy)
    else:
        _login(st, policy)
    return op


def _unlock_form(st, policy: Policy) -> None:
    """Name + operator secret, once per browser session; wrong secrets are throttled and logged."""
    st.info("Viewing only: queueing, cancelling, importing and deleting need the operator secret.",
            icon=":material/lock:")
    with st.expander("Unlock writes for this session"), st.form("access_unlock", clear_on_submit=True):
        name = st.text_input("Your name (recorded with every write)", max_chars=64, key="access_name")
        typed = st.text_input("Operator secret", type="password", key="access_secret")
        if not st.form_submit_button("Unlock"):
            return
    who, where = " ".join(name.split()), client()
    wait = THROTTLE.wait_s(where)
    if wait > 0:
        st.error(f"Too many wrong secrets from this address: try again in {wait:.0f} s.", icon=":material/timer:")
    elif not who:
        st.error("Give your name: it is recorded with every write.", icon=":material/badge:")
    elif not secret_matches(policy, typed):
        THROTTLE.fail(where)
        try:
            audit_log().append(who, SECRET, "unlock", "refused: wrong operator secret", client=where)
        except AuditError:
            pass  # the refusal stands whether or not it could be logged
        st.error("That is not the operator secret.", icon=":material/key_off:")
    elif record(Operator(who, SECRET), "unlock", "operator session opened"):
        st.session_state[SESSION_KEY] = who
        st.rerun()


def _login(st, policy: Policy) -> None:
    """OIDC: a login button per configured provider; a signed-in user who is not listed reads."""
    from streamlit.errors import StreamlitAuthError

    user = _user()
    if user.get("is_logged_in"):
        st.info("Viewing only: you are signed in but not listed as an operator.", icon=":material/lock:")
        if st.button("Log out", key="access_logout"):
            st.logout()
        return
    st.info("Viewing only: sign in as an operator to queue, cancel, import or delete.", icon=":material/lock:")
    for provider in policy.providers or (None,):
        if st.button("Log in" + (f" with {provider}" if provider else ""), key=f"access_login_{provider}"):
            try:
                st.login(provider)
            except StreamlitAuthError as err:  # e.g. Authlib not installed: one line, no traceback
                st.error(f"Login is configured but cannot start: {err}", icon=":material/error:")
