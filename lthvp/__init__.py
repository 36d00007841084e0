"""LTHVP: what lottery-ticket sparsity costs visual prompting vs linear probing.

The library is importable without Streamlit; the dashboard in ``app.py``/``pages`` only reads
the results store and draws with :mod:`lthvp.plots`.
"""

__version__ = "0.1.0"
