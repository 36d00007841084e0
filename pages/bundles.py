"""Bundles: export the store (or a filtered part) as a zip of plain data; import a bundle with a
report of what was added, skipped or rejected; delete results; the audit log of every write.
Importing and deleting are operators' (lthvp.ui.access); exporting and the log are everyone's."""

import hashlib
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from lthvp.results.shots import text as shots_text
from lthvp.results.store import BundleError
from lthvp.results.studies import register_import
from lthvp.results.audit_log import AuditError
from lthvp.ui import access, app_frame
from lthvp.ui import dashboard as db
from lthvp.ui import plots
from lthvp.ui.text import plain

app_frame.ensure_frame()

st.title("Result bundles")
st.caption("A bundle is a zip of JSON results + PNG prompts + provenance (package versions, git commit, device, "
           "time). Imports are validated (schema, config hashes, sizes, no links or path traversal) and "
           "never unpickle anything.")
operator = access.gate()
store = db.store()
df = db.results()

st.subheader("Export")
if df.empty:
    st.info("The store is empty: nothing to export.")
else:
    c1, c2, c3 = st.columns(3)
    ds_all = sorted(df["dataset"].unique())
    dss = c1.multiselect("Datasets", ds_all, default=ds_all, key="b_ds", bind="query-params")
    m_all = sorted(df["method"].unique(), reverse=True)
    ms = c2.multiselect("Methods", m_all, default=m_all, key="b_methods", bind="query-params",
                        format_func=lambda m: plots.METHOD_NAMES.get(m, m))
    sh_all = plots.shots_order(df["shots"].unique())
    shs = c3.multiselect("Shots", sh_all, default=sh_all, key="b_shots", bind="query-params",
                         format_func=plots.shots_label)
    note = st.text_input("Note stored in the manifest", key="b_note", bind="query-params")
    keys = sorted(df[df["dataset"].isin(dss) & df["method"].isin(ms) & df["shots"].isin(shs)]["hash"])
    directory = str(db.store_dir())

    def build(keys=tuple(keys), note=note) -> bytes:  # runs on click, outside the script thread
        from lthvp.results.store import ResultStore

        with tempfile.TemporaryDirectory() as tmp:
            path = ResultStore(directory).export_bundle(Path(tmp) / "bundle.zip", list(keys), note=note)
            return path.read_bytes()

    st.download_button(f"Download bundle ({len(keys)} of {len(df)} results)", build,
                       file_name=f"lthvp_{'_'.join(dss) or 'empty'}_{len(keys)}.zip", mime="application/zip",
                       disabled=not keys, on_click="ignore", key="b_download", type="primary")
    st.caption("CLI equivalent: `python -m lthvp export bundle.zip [--dataset digits]`")

st.subheader("Import")
# the uploader's key changes after each import, so Streamlit drops the uploaded bytes (a rejected
# 200 MB file is not kept alive by the widget for the rest of the session)
uploads = st.session_state.setdefault("bundle_uploads", 0)
# a viewer gets no uploader at all: Streamlit accepts upload bytes only for a widget the session shows
up = None
if operator is not None:
    up = st.file_uploader("Upload a bundle (.zip)", type=["zip"], key=f"b_upload_{uploads}")
else:
    st.caption("Importing needs an operator (see above).")


def show_report(rep: dict) -> None:
    if rep["error"]:  # file and member names are untrusted: escaped
        st.error(f"Rejected **{plain(rep['name'], 120)}**: {plain(rep['error'], 600)}. Nothing was imported.",
                 icon=":material/block:")
        return
    st.success(f"**{plain(rep['name'], 120)}**: {len(rep['added'])} added, {len(rep['skipped'])} skipped "
               f"(already in the store), 0 rejected.", icon=":material/check_circle:")
    if rep["rows"]:
        st.dataframe(rep["rows"], hide_index=True, width="stretch")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_file(path: Path, name: str) -> dict | None:
    """Import one bundle, recorded in the audit log first (file name, size, sha256) and its
    outcome after; None when the session may not import or the log cannot record it."""
    what = f"{name} ({path.stat().st_size} bytes, sha256 {file_digest(path)})"
    if not access.record(operator, "import", what):
        return None
    rep = {"name": name, "added": [], "skipped": [], "error": None, "rows": []}
    try:
        report = store.import_bundle_report(path)  # reads and validates the bundle once
    except BundleError as err:
        rep["error"] = str(err)
        access.record(operator, "import result", f"{name}: rejected: {err}")
        return rep
    access.record(operator, "import result", f"{name}: {len(report.added)} added, {len(report.skipped)} skipped"
                  + (f": {' '.join(report.added[:50])}" if report.added else ""))
    rep["added"], rep["skipped"] = report.added, report.skipped
    register_import(store, path, report, "upload", name=name)  # the bundle becomes a study (lthvp.results.studies)
    for status, hashes in (("added", report.added), ("skipped: already stored", report.skipped)):
        for h in hashes:
            c, m = report.configs[h]
            rep["rows"].append({"status": status, "hash": h, "dataset": c["dataset"], "method": c["method"],
                                "level": c["level"], "shots": shots_text(c["shots"]), "seed": c["seed"],
                                "accuracy": m["accuracy"], "ece": m["ece"]})
    return rep


if up is not None and operator is not None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.zip"
        with path.open("wb") as f:
            shutil.copyfileobj(up, f, 1 << 20)  # no second copy of the bytes in memory
        report = import_file(path, up.name)
    st.session_state["bundle_uploads"] = uploads + 1
    if report is not None:
        st.session_state["bundle_report"] = report
        st.rerun()
if "bundle_report" in st.session_state:
    show_report(st.session_state["bundle_report"])

shipped = sorted(db.shipped_bundle_dir().glob("*.zip"))
if shipped:
    with st.expander(f"Shipped bundles in {db.shipped_bundle_dir()} ({len(shipped)})"):
        for p in shipped:
            if st.button(f"Import {p.name}", key=f"ship_{p.name}", disabled=operator is None) \
                    and (report := import_file(p, p.name)) is not None:
                st.session_state["bundle_report"] = report
                st.rerun()

st.subheader("Delete results")
with st.form("b_delete", clear_on_submit=True, enter_to_submit=False):
    st.caption("Removes results from the store for everyone (their finished jobs too, so they can be run again); "
               "a later import of a bundle that holds them adds them back. CLI: `python -m lthvp store delete HASH...`")
    named = st.text_area("Result hashes (16 hex digits each, from Run details or a chart point)", key="b_delete_hashes",
                         disabled=operator is None, height=68)
    go = st.form_submit_button("Delete", disabled=operator is None, type="secondary")
if go and operator is not None:
    hashes = list(dict.fromkeys(named.split()))
    malformed = [h for h in hashes if not db.is_hash(h)]
    if not hashes or malformed:
        st.error(f"Name results by their 16-hex hash; not a hash: {plain(' '.join(malformed[:5]), 200) or 'none given'}.")
    elif access.record(operator, "delete", " ".join(hashes)):
        removed = store.delete(hashes)
        try:
            for h in removed:  # as `store delete`: a finished job would keep a deleted result from running again
                db.queue().forget(h)
        except ValueError as err:  # a damaged job queue: the results are deleted all the same
            st.warning(str(err))
        missing = [h for h in hashes if h not in removed]
        st.session_state["delete_msg"] = (f"Deleted {len(removed)} result(s)."
                                          + (f" Not stored: {' '.join(missing)}." if missing else ""))
        st.rerun()
if "delete_msg" in st.session_state:
    st.success(st.session_state.pop("delete_msg"), icon=":material/delete:")

st.subheader("Audit log")
st.caption("Every write made through this dashboard (queue, cancel, clear, import, delete, operator unlocks): who, "
           "how they were identified, from where, when, what. Append-only; an entry changed or removed by hand is "
           f"named below. File: {plain(access.audit_log().path, 300)}")
try:
    entries, problems = access.audit_log().read(newest=500)
except AuditError as err:
    st.error(str(err))
else:
    for problem in problems[:20]:
        st.warning(f"Audit log: {plain(problem, 300)}", icon=":material/report:")
    if entries:
        st.dataframe([{"when": e.when, "who": e.who, "how": e.how, "from": e.client, "action": e.action,
                       "what": e.detail} for e in entries], hide_index=True, width="stretch", key="b_audit",
                     column_config={"what": st.column_config.TextColumn(width="large")})
    else:
        st.caption("No writes recorded yet.")
