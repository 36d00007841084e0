"""Select widgets whose value always lives in the URL, so a copied link keeps its meaning."""

from __future__ import annotations

from lthvp.ui.text import plain
from lthvp.ui.url_notice import named

UNSET = object()


def linked(container, kind: str, label: str, options: list, key: str, default, format_func=str, **kw):
    """A selectbox / radio / multiselect whose value is always in the URL (as its labels).

    Streamlit's ``bind="query-params"`` leaves a value equal to the widget's default out of the URL
    and refuses manual writes, so a default that depends on the store (the best-covered dataset,
    the last level) would make a link change meaning as results arrive. These widgets keep the URL
    themselves. The value shown is, in this order: a link's value (when the URL differs from what
    the page last wrote); the pick last made under these same choices, when the choices changed and
    came back (another preset, family or arm); the current value; ``default`` when that is not an
    option. It is set before the widget is created, so a key shared by several pages carries over.
    A link value that is not an option is named in a notice (escaped: URL text is untrusted)."""
    import streamlit as st

    multi = kind == "multiselect"
    by_label = {format_func(o): o for o in options}
    signature = "\x1f".join(by_label)
    memo, offered = f"_url_{key}", f"_opts_{key}"
    picks = st.session_state.setdefault(f"_pick_{key}", {})  # the last pick under each set of choices
    changed = st.session_state.get(offered) not in (None, list(by_label))
    st.session_state[offered] = list(by_label)

    value = st.session_state.get(key, UNSET)
    given = (st.query_params.get_all(key) if multi else [st.query_params[key]]) if key in st.query_params else None
    if given is not None and given != st.session_state.get(memo):  # a link was opened
        picked = [by_label[g] for g in given if g in by_label]
        if bad := [g for g in given if g not in by_label]:
            st.warning(f"The link's {plain(key)}={plain(', '.join(bad))} is not available here "
                       f"(choices: {plain(', '.join(by_label), 300)}); it was left out.")
            named(key)  # the frame's link notice leaves it to this one
        value = (picked or default) if multi else (picked[0] if picked else default)
    elif changed and signature in picks:
        value = picks[signature]
    if multi:
        valid = isinstance(value, list) and set(value) <= set(options) and (bool(value) or not changed)
    else:
        valid = value is not UNSET and not isinstance(value, list) and value in options
    st.session_state[key] = value if valid else default

    value = getattr(container, kind)(label, options, key=key, format_func=format_func, **kw)
    written = [format_func(v) for v in value] if multi else [format_func(value)] if value in options else []
    if written:
        st.query_params[key] = written if multi else written[0]
    else:
        st.query_params.pop(key, None)
    st.session_state[memo] = written
    picks[signature] = value
    return value
