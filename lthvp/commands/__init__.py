"""The command line (`python -m lthvp ...`)."""
