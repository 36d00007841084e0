"""LTHVP: what lottery-ticket sparsity costs visual prompting vs linear probing.

The library computes and is importable without Streamlit; the dashboard in ``app.py``/``pages``
reads the results store, draws, and submits jobs to the queue (it never trains in the server).
"""

__version__ = "0.1.0"
