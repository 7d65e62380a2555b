"""Checks for the exercises of lesson 09 (see SPEC.md)."""
