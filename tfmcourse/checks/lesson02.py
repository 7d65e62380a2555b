"""Checks for the exercises of lesson 02 (see SPEC.md)."""
