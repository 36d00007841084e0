"""Bundles: export the store (or a filtered part) as a zip of plain data; import a bundle with a
report of what was added, skipped or rejected."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from lthvp.results.store import BundleError
from lthvp.ui import app_frame
from lthvp.ui import dashboard as db
from lthvp.ui import plots
from lthvp.ui.text import plain

app_frame.ensure_frame()

st.title("Result bundles")
st.caption("A bundle is a zip of JSON results + PNG prompts + provenance (package versions, git commit, device, "
           "time). Imports are validated (schema, config hashes, sizes, no links or path traversal) and "
           "never unpickle anything.")
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
up = st.file_uploader("Upload a bundle (.zip)", type=["zip"], key=f"b_upload_{uploads}")


def show_report(rep: dict) -> None:
    if rep["error"]:  # file and member names are untrusted: escaped
        st.error(f"Rejected **{plain(rep['name'], 120)}**: {plain(rep['error'], 600)}. Nothing was imported.",
                 icon=":material/block:")
        return
    st.success(f"**{plain(rep['name'], 120)}**: {len(rep['added'])} added, {len(rep['skipped'])} skipped "
               f"(already in the store), 0 rejected.", icon=":material/check_circle:")
    if rep["rows"]:
        st.dataframe(rep["rows"], hide_index=True, width="stretch")


def import_file(path: Path, name: str) -> dict:
    rep = {"name": name, "added": [], "skipped": [], "error": None, "rows": []}
    try:
        report = store.import_bundle_report(path)  # reads and validates the bundle once
    except BundleError as err:
        rep["error"] = str(err)
        return rep
    rep["added"], rep["skipped"] = report.added, report.skipped
    for status, hashes in (("added", report.added), ("skipped: already stored", report.skipped)):
        for h in hashes:
            c, m = report.configs[h]
            rep["rows"].append({"status": status, "hash": h, "dataset": c["dataset"], "method": c["method"],
                                "level": c["level"], "shots": str(c["shots"]), "seed": c["seed"],
                                "accuracy": m["accuracy"], "ece": m["ece"]})
    return rep


if up is not None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.zip"
        with path.open("wb") as f:
            shutil.copyfileobj(up, f, 1 << 20)  # no second copy of the bytes in memory
        st.session_state["bundle_report"] = import_file(path, up.name)
    st.session_state["bundle_uploads"] = uploads + 1
    st.rerun()
if "bundle_report" in st.session_state:
    show_report(st.session_state["bundle_report"])

shipped = sorted(db.shipped_bundle_dir().glob("*.zip"))
if shipped:
    with st.expander(f"Shipped bundles in {db.shipped_bundle_dir()} ({len(shipped)})"):
        for p in shipped:
            if st.button(f"Import {p.name}", key=f"ship_{p.name}"):  # kept: the import triggers a redraw
                st.session_state["bundle_report"] = import_file(p, p.name)
                st.rerun()
