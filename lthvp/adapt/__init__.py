"""Adapting a frozen source model to a target task: visual prompting (ILM-VP), linear probing, the shared training loop."""
