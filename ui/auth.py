"""Shared lab mode: sign-in (a password file or Streamlit's OIDC login), roles, and ownership checks.

Off unless ``SERVICEGRID_LAB_MODE=1``. Users live in the JSON file named by ``SERVICEGRID_USERS``:
``{"users": {"alice": {"role": "student", "salt": hex, "hash": hex, "iterations": n}}}`` with salted
PBKDF2-SHA256 hashes; add one with ``python -m ui.auth add-user FILE NAME [--role teacher]``.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ITERATIONS = 240_000
ROLES = ("student", "teacher")
SESSION_KEY = "sg_lab_user"
NOT_YOURS = "not found or not yours"


@dataclass(frozen=True)
class User:
    """A signed-in lab user; a teacher sees every workflow and run and has no quota."""

    name: str
    role: str = "student"

    @property
    def is_teacher(self) -> bool:
        return self.role == "teacher"


def lab_mode_enabled() -> bool:
    return os.environ.get("SERVICEGRID_LAB_MODE", "").strip().lower() in ("1", "true", "yes", "on")


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> dict[str, Any]:
    """A users-file entry's secret part: salt, PBKDF2-SHA256 hash and iteration count (hex)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return {"salt": salt.hex(), "hash": digest.hex(), "iterations": iterations}


def verify_password(entry: dict[str, Any], password: str) -> bool:
    """Whether ``password`` matches a users-file entry (constant-time comparison)."""
    try:
        salt, expected, iterations = bytes.fromhex(entry["salt"]), bytes.fromhex(entry["hash"]), int(entry["iterations"])
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations), expected)


def load_users(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The users file (``SERVICEGRID_USERS``); {} when unset or missing."""
    path = path or os.environ.get("SERVICEGRID_USERS")
    if not path or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    users = data.get("users", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in users.items() if isinstance(v, dict)}


def authenticate(name: str, password: str, users: dict[str, dict[str, Any]] | None = None) -> User | None:
    """The user if the name and password match the users file, else None."""
    users = load_users() if users is None else users
    entry = users.get(name.strip())
    if entry is None or not verify_password(entry, password):
        return None
    role = entry.get("role", "student")
    return User(name.strip(), role if role in ROLES else "student")


def add_user(path: Path, name: str, password: str, role: str = "student") -> None:
    """Add or replace a user in the users file (created if missing)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"users": {}}
    data.setdefault("users", {})[name] = {"role": role, **hash_password(password)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


# -- ownership --------------------------------------------------------------------------------------


def owner_filter(user: User | None) -> str | None:
    """The ``owner=`` / ``user=`` filter for store listings: None (all) off lab mode or for a teacher."""
    return None if user is None or user.is_teacher else user.name


def may_access(user: User | None, owner: str | None) -> bool:
    """Whether ``user`` may open a workflow or run owned by ``owner``."""
    return user is None or user.is_teacher or owner == user.name


def workflow_owner(store: Any, workflow_id: str) -> str | bool | None:
    """The owner of a stored workflow; False when there is no such workflow."""
    for summary in store.list_workflows(include_deleted=True):
        if summary.id == workflow_id:
            return summary.owner
    return False


def may_open_workflow(user: User | None, store: Any, workflow_id: str) -> bool:
    if user is None:
        return True
    owner = workflow_owner(store, workflow_id)
    return owner is not False and may_access(user, owner)  # type: ignore[arg-type]


def may_open_run(user: User | None, store: Any, run_id: str, manager: Any = None) -> bool:
    """Whether ``user`` may watch run ``run_id`` (looked up in the manager's memory, then the store)."""
    if user is None or user.is_teacher:
        return True
    if manager is not None and manager.get(run_id) is not None:
        return (manager.snapshot(run_id).options or {}).get("user") == user.name
    detail = store.get_run(run_id)
    return detail is not None and detail.summary.user == user.name


# -- Streamlit -------------------------------------------------------------------------------------


def _lab_quota(manager: Any) -> Any:
    import streamlit as st

    from engine.quotas import QuotaLimits, RunQuota

    @st.cache_resource(show_spinner=False)
    def quota_for(_manager: Any, manager_id: int) -> RunQuota:
        quota = RunQuota(QuotaLimits.from_env())
        _manager.bus.subscribe(quota)  # RunFinished frees the slot
        return quota

    return quota_for(manager, id(manager))


def submit_for_user(manager: Any, workflow: Any, options: Any) -> Any:
    """``manager.submit`` as the signed-in user: the run records the user and counts against the
    user's quota (engine.quotas; a teacher is exempt). Off lab mode: a plain submit.

    Raises:
        QuotaExceededError: the user already has too many runs or queued nodes.
    """
    user = current_user()
    if user is None:
        return manager.submit(workflow, options)
    import dataclasses
    import uuid

    options = dataclasses.replace(options, user=user.name)
    quota = _lab_quota(manager)
    run_id = uuid.uuid4().hex[:12]
    quota.admit(user.name, run_id, len(workflow.nodes), exempt=user.is_teacher)
    try:
        return manager.submit(workflow, options, run_id=run_id)
    except BaseException:
        quota.release(run_id)
        raise



def current_user() -> User | None:
    """The signed-in user, or None when lab mode is off (or nobody signed in yet)."""
    if not lab_mode_enabled():
        return None
    import streamlit as st

    user = st.session_state.get(SESSION_KEY)
    if user is None and _oidc_configured():
        info = st.user
        if getattr(info, "is_logged_in", False):
            name = str(info.get("email") or info.get("name") or "user")
            teachers = {t.strip() for t in os.environ.get("SERVICEGRID_TEACHERS", "").split(",") if t.strip()}
            user = st.session_state[SESSION_KEY] = User(name, "teacher" if name in teachers else "student")
    return user


def require_user() -> User | None:
    """In lab mode: the signed-in user, or a sign-in form and ``st.stop()``. Off lab mode: None."""
    if not lab_mode_enabled():
        return None
    import streamlit as st

    user = current_user()
    if user is not None:
        with st.sidebar:
            st.caption(f"Signed in as **{user.name}** ({user.role})")
            if st.button("Sign out", key="sg_sign_out"):
                st.session_state.pop(SESSION_KEY, None)
                if _oidc_configured():
                    st.logout()
                st.rerun()
        return user
    sign_in_page()
    st.stop()
    return None


def sign_in_page() -> None:
    """The sign-in form (lab mode). app.py shows it as the only page until someone signs in."""
    import streamlit as st

    st.title("Sign in to ServiceGrid Studio")
    if not load_users() and not _oidc_configured():
        st.warning("Lab mode is on but no users are configured: set SERVICEGRID_USERS to a users file "
                   "(`python -m ui.auth add-user users.json NAME`) or configure OIDC in secrets.toml.")
    if _oidc_configured():
        st.button("Sign in with your account", on_click=st.login, key="sg_oidc_login")
    with st.form("sg_sign_in"):
        name = st.text_input("User name", key="sg_login_name")
        password = st.text_input("Password", type="password", key="sg_login_password")
        if st.form_submit_button("Sign in"):
            found = authenticate(name, password)
            if found is None:
                st.error("Unknown user name or wrong password.")
            else:
                st.session_state[SESSION_KEY] = found
                st.rerun()


def _oidc_configured() -> bool:
    try:
        import streamlit as st

        return "auth" in st.secrets
    except Exception:  # no secrets file: OIDC is simply not configured
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m ui.auth add-user FILE NAME [--role teacher]`` (the password is asked for)."""
    parser = argparse.ArgumentParser(prog="python -m ui.auth", description="manage lab-mode users")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="add or replace a user (asks for the password)")
    add.add_argument("file", type=Path)
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="student")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
    if len(password) < 8:
        print("python -m ui.auth: use a password of at least 8 characters", file=sys.stderr)
        return 2
    add_user(args.file, args.name, password, args.role)
    print(f"{args.name} ({args.role}) saved in {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
