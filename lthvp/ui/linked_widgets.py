"""Select widgets whose value always lives in the URL, so a copied link keeps its meaning."""

from __future__ import annotations


def linked(container, kind: str, label: str, options: list, key: str, default, format_func=str, **kw):
    """A selectbox / radio / multiselect whose value is always in the URL (as its labels).

    Streamlit's ``bind="query-params"`` leaves a value equal to the widget's default out of the URL
    and refuses manual writes, so a default that depends on the store (the best-covered dataset,
    the last level) would make a link change meaning as results arrive. These widgets keep the URL
    themselves: a link's value is taken when the URL differs from what the page last wrote; every
    run writes the current value back. A link value that is not an option is named in a notice."""
    import streamlit as st

    multi = kind == "multiselect"
    by_label = {format_func(o): o for o in options}
    memo = f"_url_{key}"
    if key in st.query_params:
        given = st.query_params.get_all(key) if multi else [st.query_params[key]]
        if given != st.session_state.get(memo):  # a link was opened, not what this page wrote last
            picked = [by_label[g] for g in given if g in by_label]
            if bad := [g for g in given if g not in by_label]:
                st.warning(f"The link's {key}={', '.join(bad)} is not available here "
                           f"(choices: {', '.join(by_label)}); it was left out.")
            st.session_state[key] = (picked or default) if multi else (picked[0] if picked else default)
    current = st.session_state.get(key)
    if current is None or (multi and not set(current) <= set(options)) or (not multi and current not in options):
        st.session_state[key] = default
    value = getattr(container, kind)(label, options, key=key, format_func=format_func, **kw)
    written = [format_func(v) for v in value] if multi else [format_func(value)] if value is not None else []
    if written:
        st.query_params[key] = written if multi else written[0]
    else:
        st.query_params.pop(key, None)
    st.session_state[memo] = written
    return value
